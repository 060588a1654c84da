//! One cell: its images loaded and checked, its model trained (resumed from a checkpoint, or
//! taken from an earlier cell that differs only in recall settings), every recall condition of
//! every arm evaluated, and the record that says all of it.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use pcmem_data::transforms::binarise;
use pcmem_data::{DatasetId, ImageSet, Selection, Split};
use pcmem_model::{AssociativeMemory, CheckpointPolicy, FitProgress, MemoryError, Resume};

use super::partial::{ModelIdentity, PartialRecall};
use super::{kernel_name, stop_point, RunOptions, CODE_VERSION};
use crate::error::{HarnessError, Result};
use crate::record::{DataInfo, FitInfo, RecallResult, RunRecord, Timings};
use crate::spec::{Cell, Corruption, Grid};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Claim grids store no declared development image; development grids store only those.
fn check_development(
    grid: &Grid,
    cell: &Cell,
    id: DatasetId,
    split: Split,
    set: &pcmem_data::ImageSet,
) -> Result<()> {
    let dev = pcmem_data::development::Development::of(id);
    let hits = pcmem_data::development::development_in(id, split, &set.positions, &set.labels);
    let message = if !grid.train.development && !hits.is_empty() {
        format!(
            "cell {} stores {} of the development images of {} ({}: e.g. position {}); \
             grids that judge claims keep them out: choose other images, or mark a grid that \
             chooses settings with `development = true` in [train]",
            cell.id(),
            hits.len(),
            cell.dataset,
            dev.describe(),
            hits[0]
        )
    } else if grid.train.development && hits.len() != set.len() {
        format!(
            "cell {} is a development cell (`development = true`) but {} of its {} images are \
             not development images of {} ({}); select them with subset = \"range:...\" or \
             \"class:...\"",
            cell.id(),
            set.len() - hits.len(),
            set.len(),
            cell.dataset,
            dev.describe()
        )
    } else {
        return Ok(());
    };
    Err(HarnessError::Spec {
        file: grid.id.clone(),
        message,
    })
}

/// What a cell reports while it runs (to [`run_cell`]'s `on_progress`).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A training epoch finished.
    Epoch(&'a FitProgress),
    /// A recall condition finished; `reused`: it had been finished before a stop (see
    /// [`PartialRecall`]) and was not computed again.
    Recalled {
        /// Its result.
        result: &'a RecallResult,
        /// Whether it was taken from before a stop.
        reused: bool,
    },
}

/// A model trained by an earlier cell of the same run, kept for the next cells that differ
/// from that cell only in recall settings (the points of a search over `recall.*`): they
/// recall with it instead of training the same model again.
pub struct Trained {
    /// The cell it was trained for.
    cell: Cell,
    /// Its training settings and the data's checksum: what must match.
    key: (serde_json::Value, String),
    model: Box<dyn pcmem_model::AssociativeMemory>,
    fit: pcmem_model::FitReport,
    fit_s: f64,
    fit_total_s: Option<f64>,
    resumed_at_epoch: Option<usize>,
}

/// The settings that decide training (everything the model's factory does not list among
/// its recall settings), and the data's checksum.
fn training_key(
    kind: crate::spec::ModelKind,
    config: &serde_json::Value,
    sha256: &str,
) -> (serde_json::Value, String) {
    (kind.factory().training_settings(config), sha256.to_string())
}

/// The cell whose kept trained model (`--keep-trained`) serves `cell` without training: `cell`
/// itself, or another point of its search that differs from it only in recall settings (a
/// recall-only candidate added to a search later). A cell qualifies when its record (written
/// once training ended) states the training settings `cell` resolves to now, with the data
/// `data_sha256` when given, and its checkpoint is still there: then that checkpoint holds the
/// final state, which resuming reads and never writes. `pcmem run --dry-run` prices such cells
/// at no training. Returns that cell and its record's path (its checkpoint's is beside it).
pub fn kept_training(
    grid: &Grid,
    cell: &Cell,
    record_file: &std::path::Path,
    data_sha256: Option<&str>,
) -> Option<(Cell, PathBuf)> {
    let resolved = crate::models::resolve(grid, cell).ok()?;
    let settings = cell.model.factory().training_settings(&resolved.config);
    let mut candidates = vec![cell.clone()];
    if !cell.search.is_empty() {
        candidates.extend(
            grid.cells()
                .into_iter()
                .filter(|c| c.base() == cell.base() && c.id() != cell.id()),
        );
    }
    candidates.into_iter().find_map(|c| {
        let rec = record_file.with_file_name(format!("{}.json", c.id()));
        let r = RunRecord::read(&rec).ok()?;
        let kept = r.cell.model.factory().training_settings(&r.model_config) == settings
            && data_sha256.is_none_or(|sha| r.data.sha256 == sha)
            && checkpoint_policy(&rec, grid, &c, &r.data.sha256, Default::default())
                .meta_path()
                .exists();
        kept.then_some((c, rec))
    })
}

/// The checkpoint beside `record_file` of `cell` of `grid` (its grid, profile and cell), as
/// `pcmem run --dry-run` sees it before any image is read.
#[derive(Debug, Clone, PartialEq)]
pub enum SavedTraining {
    /// Written under the cell's training settings: a run resumes after these epochs (it checks
    /// the rest, the data checksum and the tensors, when it resumes, and restarts a cell whose
    /// checkpoint fails those checks).
    Resumes(usize),
    /// Written under other training settings (these keys differ): a run refuses it and trains
    /// from epoch 0.
    Other {
        /// Epochs it holds.
        epochs: usize,
        /// The settings that differ, dotted (`learning.alpha`).
        keys: Vec<String>,
    },
}

/// What the checkpoint beside `record_file` offers `cell` of `grid` (`None`: no checkpoint of
/// this cell).
pub fn saved_training(
    record_file: &std::path::Path,
    grid: &Grid,
    cell: &Cell,
) -> Option<SavedTraining> {
    // The identity ends with the data checksum, unknown before the images are read.
    let policy = checkpoint_policy(record_file, grid, cell, "", Default::default());
    let peek = policy.peek()?;
    if !peek.identity.starts_with(&policy.identity) {
        return None;
    }
    let (Some(saved), Ok(now)) = (&peek.config, crate::models::resolve(grid, cell)) else {
        return Some(SavedTraining::Resumes(peek.epochs));
    };
    // The saved settings as the model reads them when it resumes.
    let then = crate::stale::as_today(cell, saved);
    let factory = cell.model.factory();
    let keys = crate::stale::differing_keys(
        &factory.training_settings(&then),
        &factory.training_settings(&now.config),
        "",
    );
    Some(match keys.is_empty() {
        true => SavedTraining::Resumes(peek.epochs),
        false => SavedTraining::Other {
            epochs: peek.epochs,
            keys,
        },
    })
}

/// The checkpoint of the cell whose record is `record_file`, saved every `every`. Its identity
/// ties it to the grid, the cell and the data's checksum.
pub fn checkpoint_policy(
    record_file: &std::path::Path,
    grid: &Grid,
    cell: &Cell,
    data_sha256: &str,
    every: std::time::Duration,
) -> CheckpointPolicy {
    CheckpointPolicy::new(
        record_file.with_extension("ckpt"),
        every,
        format!(
            "grid {} profile {} cell {} data sha256 {data_sha256}",
            grid.id,
            grid.applied_profile,
            cell.id()
        ),
    )
}

/// A cell's images as its model sees them.
struct CellImages {
    selection: Selection,
    set: ImageSet,
    /// The stored images, binarised to -1/1 for a bipolar model.
    pixels: Vec<f32>,
    /// `pixels` as an `(N, d)` tensor.
    truth: Tensor,
    /// Whether pixels are -1/1 (a bipolar model or `binarise = true`) rather than 0..1.
    bipolar: bool,
}

/// Loads the images `cell` stores and checks them against the grid's development rule.
fn load_images(grid: &Grid, cell: &Cell, opts: &RunOptions) -> Result<CellImages> {
    let id = DatasetId::from_name(&cell.dataset)?;
    let selection = match (
        grid.train.subset.strip_prefix("class:"),
        crate::spec::parse_range(&grid.train.subset),
    ) {
        (Some(l), _) => Selection::Class {
            label: l.parse().expect("validated"),
            n: cell.n_images,
        },
        (None, Some((from, to))) => Selection::Range {
            from,
            to,
            n: cell.n_images,
        },
        (None, None) => Selection::First(cell.n_images),
    };
    let split = if grid.train.split == "test" {
        Split::Test
    } else {
        Split::Train
    };
    let bipolar = cell.model.bipolar() || grid.train.binarise;
    let set = pcmem_data::load(id, split, &selection, &opts.data)?;
    check_development(grid, cell, id, split, &set)?;
    let mut pixels = set.pixels.clone();
    if bipolar {
        pixels = binarise(&pixels, 0.5);
    }
    let truth = Tensor::from_vec(pixels.clone(), (set.len(), set.dim()), &Device::Cpu)
        .map_err(|e| HarnessError::Invalid(e.to_string()))?;
    Ok(CellImages {
        selection,
        set,
        pixels,
        truth,
        bipolar,
    })
}

/// A model's error as the harness reports it: a stop asked for ends the run, anything else
/// fails the cell.
fn cell_error(grid: &Grid, cell: &Cell, e: MemoryError) -> HarnessError {
    match e.downcast_ref::<pcmem_model::PcnError>() {
        Some(stop @ pcmem_model::PcnError::Interrupted { .. }) => HarnessError::Interrupted {
            grid: grid.id.clone(),
            at: format!("{}: {stop}", cell.id()),
        },
        _ => HarnessError::Cell {
            grid: grid.id.clone(),
            cell: cell.id(),
            reason: e.to_string(),
        },
    }
}

/// Builds and trains `cell`'s model: from its own checkpoint when there is one, from the kept
/// model of another point of its search when that serves it, else from epoch 0.
#[allow(clippy::too_many_arguments)]
fn train(
    grid: &Grid,
    cell: &Cell,
    opts: &RunOptions,
    record_file: &std::path::Path,
    resolved: &crate::models::Resolved,
    images: &CellImages,
    key: (serde_json::Value, String),
    on_epoch: &mut dyn FnMut(&FitProgress),
) -> Result<Trained> {
    let err = |e| cell_error(grid, cell, e);
    let sha256 = &images.set.sha256;
    let mut model = crate::models::build(resolved, &opts.device).map_err(err)?;
    model.set_kernel(opts.kernel).map_err(err)?;
    let t1 = Instant::now();
    // Training seconds of the runs before this one (from the checkpoint resumed), and the cell
    // whose training the model is (another search point's, when its kept model serves this one).
    let (fit, resume, earlier_s, origin) = match opts.checkpoint_every {
        Some(every) => {
            let own = checkpoint_policy(record_file, grid, cell, sha256, every);
            let kept = match own.meta_path().exists() {
                true => None,
                false => kept_training(grid, cell, record_file, Some(sha256)),
            };
            let (mut policy, origin) = match kept {
                Some((c, rec)) => (checkpoint_policy(&rec, grid, &c, sha256, every), c),
                None => (own, cell.clone()),
            };
            if let Some(flag) = &opts.stop {
                policy = policy.with_stop(flag.clone());
            }
            let (fit, resume) = model
                .fit_resumable(&images.truth, &policy, on_epoch)
                .map_err(err)?;
            (fit, resume, policy.earlier_seconds(), origin)
        }
        None => (
            model.fit_with(&images.truth, on_epoch).map_err(err)?,
            Resume::Fresh,
            0.0,
            cell.clone(),
        ),
    };
    let resumed_at_epoch = match &resume {
        Resume::From { epoch } if fit.curve.len() == *epoch => {
            eprintln!(
                "{}: {} recalls with the trained model the checkpoint of {} kept \
                 ({epoch} epochs; nothing trained now)",
                grid.id,
                cell.id(),
                origin.id()
            );
            Some(*epoch)
        }
        Resume::From { epoch } => {
            eprintln!(
                "{}: {} resumed from its checkpoint after epoch {epoch}",
                grid.id,
                cell.id()
            );
            Some(*epoch)
        }
        Resume::Refused { path, reason } => {
            eprintln!(
                "{}: {} checkpoint {} not used ({reason}); removed, trained from epoch 0",
                grid.id,
                cell.id(),
                path.display()
            );
            None
        }
        Resume::Fresh | Resume::Unsupported => None,
    };
    let fit_s = t1.elapsed().as_secs_f64();
    Ok(Trained {
        cell: origin,
        key,
        model,
        fit,
        fit_s,
        fit_total_s: Some(earlier_s + fit_s),
        resumed_at_epoch,
    })
}

/// Corrupts the stored images as `corruption` says, recalls them with `model` and measures
/// each image's error; saves the picture the grid asks for.
fn recall_condition(
    grid: &Grid,
    cell: &Cell,
    record_file: &std::path::Path,
    model: &mut dyn AssociativeMemory,
    images: &CellImages,
    corruption: &Corruption,
    arm: &str,
) -> Result<RecallResult> {
    let (set, pixels, bipolar) = (&images.set, &images.pixels, images.bipolar);
    let d = set.dim();
    let t2 = Instant::now();
    let mut cue = pixels.clone();
    let known = match corruption {
        Corruption::Noise(noise) => {
            noise.apply(&mut cue, grid.recall.noise_seed);
            if bipolar {
                cue = binarise(&cue, 0.0);
            }
            None
        }
        Corruption::Mask(mask) => {
            let m = mask.build(set.shape, grid.recall.noise_seed);
            let fill = if bipolar { -1.0 } else { 0.0 };
            pcmem_data::transforms::apply_mask(&mut cue, &m, fill);
            Some(
                Tensor::from_vec(m, (1, d), &Device::Cpu)
                    .map_err(|e| HarnessError::Invalid(e.to_string()))?,
            )
        }
    };
    let cue_t = Tensor::from_vec(cue.clone(), (set.len(), d), &Device::Cpu)
        .map_err(|e| HarnessError::Invalid(e.to_string()))?;
    let out = model
        .recall(&cue_t, known.as_ref())
        .map_err(|e| cell_error(grid, cell, e))?;
    let recalled: Vec<f32> = out
        .images
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| HarnessError::Invalid(e.to_string()))?;
    let mse: Vec<f64> = recalled
        .chunks(d)
        .zip(pixels.chunks(d))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum::<f64>()
                / d as f64
        })
        .collect();
    let seconds = t2.elapsed().as_secs_f64();
    let picture = match grid.recall.keep_images {
        0 => None,
        k => Some(save_picture(
            cell,
            record_file,
            images,
            k,
            corruption,
            arm,
            &cue,
            &recalled,
        )?),
    };
    Ok(RecallResult {
        corruption: corruption.to_string(),
        threshold: grid.threshold(corruption),
        mse,
        steps: out.steps,
        converged: out.converged,
        seconds,
        picture,
        arm: arm.to_string(),
    })
}

/// Rows of the first `keep` images beside the record (original, corrupted, recalled,
/// |error|, in 0..1); returns the picture's file name.
#[allow(clippy::too_many_arguments)]
fn save_picture(
    cell: &Cell,
    record_file: &std::path::Path,
    images: &CellImages,
    keep: usize,
    corruption: &Corruption,
    arm: &str,
    cue: &[f32],
    recalled: &[f32],
) -> Result<String> {
    let arm_tag = if arm == "paper" {
        String::new()
    } else {
        format!("__{arm}")
    };
    let name = format!(
        "{}__{}{arm_tag}.png",
        cell.id(),
        corruption.to_string().replace(':', "_")
    );
    let to01 = |v: &[f32]| -> Vec<f32> {
        if images.bipolar {
            v.iter().map(|x| 0.5 * (x + 1.0)).collect()
        } else {
            v.to_vec()
        }
    };
    let (orig, rec) = (to01(&images.pixels), to01(recalled));
    let error: Vec<f32> = orig.iter().zip(&rec).map(|(a, b)| (a - b).abs()).collect();
    crate::plots::picture_rows(
        &record_file.with_file_name(&name),
        images.set.shape,
        keep.min(images.set.len()),
        &[
            ("original", &orig),
            ("corrupted", &to01(cue)),
            ("recalled", &rec),
            ("|error|", &error),
        ],
    )?;
    Ok(name)
}

/// Trains `cell`'s model (or reuses the one in `cache` when the cell differs from the cell it
/// was trained for only in recall settings), recalls every condition of every arm, and
/// returns the record; the model is left in `cache` for the next cell. Writes nothing except
/// the pictures (and checkpoints, with the recall conditions finished so far: see
/// [`PartialRecall`]); `on_progress` hears of every training epoch and recall condition.
pub fn run_cell(
    grid: &Grid,
    cell: &Cell,
    opts: &RunOptions,
    record_file: &std::path::Path,
    on_progress: &mut dyn FnMut(Progress<'_>),
    cache: &mut Option<Trained>,
) -> Result<RunRecord> {
    let t0 = Instant::now();
    let images = load_images(grid, cell, opts)?;
    let load_s = t0.elapsed().as_secs_f64();
    let set = &images.set;
    let resolved = crate::models::resolve(grid, cell).map_err(|e| HarnessError::Spec {
        file: grid.id.clone(),
        message: e,
    })?;
    if resolved.input_dim != set.dim() {
        return Err(HarnessError::Invalid(format!(
            "{}: images of {} values, the dataset's declared shape has {}",
            set.source,
            set.dim(),
            resolved.input_dim
        )));
    }
    let key = training_key(cell.model, &resolved.config, &set.sha256);
    let reuse = match cache.take() {
        Some(mut t) if t.key == key && t.cell.base() == cell.base() => t
            .model
            .set_recall_settings(&resolved.config)
            .ok()
            .map(|()| t),
        _ => None,
    };
    let mut trained = match reuse {
        Some(t) => {
            eprintln!(
                "{}: {} recalls with the model trained for {} (only recall settings differ)",
                grid.id,
                cell.id(),
                t.cell.id()
            );
            t
        }
        None => train(
            grid,
            cell,
            opts,
            record_file,
            &resolved,
            &images,
            key,
            &mut |p| on_progress(Progress::Epoch(p)),
        )?,
    };
    let kernel = kernel_name(opts.kernel);
    let device = pcmem_model::device::name(&opts.device);
    // Conditions finished before a stop are kept only where checkpoints are.
    let mut partial = opts.checkpoint_every.map(|_| {
        let model = ModelIdentity::new(
            trained.key.0.clone(),
            &trained.key.1,
            CODE_VERSION,
            Some(kernel.clone()),
            &device,
            &trained.fit.curve,
        );
        PartialRecall::open(record_file, model)
    });
    let mut recall: Vec<RecallResult> = Vec::new();
    let mut arms = std::collections::BTreeMap::new();
    for arm in grid.arm_names() {
        let mut recall_settings = resolved.config["recall"].clone();
        if arm != "paper" {
            let resolved =
                crate::models::resolve_arm(grid, cell, &arm).map_err(|e| HarnessError::Spec {
                    file: grid.id.clone(),
                    message: format!("[arms.{arm}]: {e}"),
                })?;
            let Some(r) = resolved else {
                // The arm leaves this model as it is: its recall is the paper arm's.
                let same: Vec<RecallResult> = recall
                    .iter()
                    .filter(|r| r.arm == "paper")
                    .map(|r| RecallResult {
                        arm: arm.clone(),
                        ..r.clone()
                    })
                    .collect();
                recall.extend(same);
                continue;
            };
            trained
                .model
                .set_recall_settings(&r.config)
                .map_err(|e| cell_error(grid, cell, e))?;
            recall_settings = r.config["recall"].clone();
            arms.insert(arm.clone(), recall_settings.clone());
        }
        for corruption in grid.corruptions() {
            let condition = super::partial::condition(grid, &arm, &recall_settings, &corruption);
            if let Some(done) = partial.as_ref().and_then(|p| p.take(&condition)) {
                on_progress(Progress::Recalled {
                    result: &done,
                    reused: true,
                });
                recall.push(done);
                continue;
            }
            // A stop asked for during recall ends the cell here: its trained model stays in
            // its checkpoint (written at the end of training) and the conditions it finished
            // in `partial`, so the next run recalls only the others.
            stop_point(opts, grid, || {
                format!("{}: before recall from {corruption} ({arm} arm)", cell.id())
            })?;
            let result = recall_condition(
                grid,
                cell,
                record_file,
                trained.model.as_mut(),
                &images,
                &corruption,
                &arm,
            )?;
            if let Some(p) = partial.as_mut() {
                p.push(condition, result.clone())?;
            }
            on_progress(Progress::Recalled {
                result: &result,
                reused: false,
            });
            recall.push(result);
        }
    }
    let fit = &trained.fit;
    let record = RunRecord {
        schema: crate::record::SCHEMA,
        grid: grid.id.clone(),
        profile: grid.applied_profile.clone(),
        cell: cell.clone(),
        model_config: resolved.config,
        parameters: trained.model.parameter_count(),
        data: DataInfo {
            dataset: cell.dataset.clone(),
            split: grid.train.split.clone(),
            selection: format!("{:?}", images.selection),
            sha256: set.sha256.clone(),
            source: set.source.clone(),
            n: set.len(),
            shape: [set.shape.0, set.shape.1, set.shape.2],
            pixel_range: if images.bipolar {
                "bipolar".into()
            } else {
                "zero_one".into()
            },
        },
        code_version: CODE_VERSION.to_string(),
        device,
        kernel: Some(kernel),
        finished_unix: unix_now(),
        timings: Timings {
            load_s,
            fit_s: trained.fit_s,
            fit_total_s: trained.fit_total_s,
        },
        fit: FitInfo {
            curve: fit.curve.clone(),
            converged: fit.converged,
            stop: fit.stop.clone(),
            resolved: fit.resolved.clone(),
            resumed_at_epoch: trained.resumed_at_epoch,
            // A model that reused another's is still the model trained for the first.
            trained_for: (trained.cell != *cell).then(|| trained.cell.id()),
        },
        recall,
        arms,
        tune: grid.tune.clone(),
    };
    // Kept for a next cell that differs only in recall settings.
    *cache = Some(trained);
    Ok(record)
}

//! The runner: expands a grid into cells, skips cells whose record exists (so a killed run
//! resumes where it stopped), trains each remaining cell once and evaluates every recall
//! condition on it, and writes one record per cell atomically.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pcmem_baselines::{
    Autoencoder, AutoencoderConfig, ClassicalHopfield, DenseAm, HopfieldConfig, Interaction,
    ModernHopfield, ModernHopfieldConfig,
};
use pcmem_data::transforms::binarise;
use pcmem_data::{DataDirs, DatasetId, Selection, Split};
use pcmem_model::{AssociativeMemory, FitProgress, PcnConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{HarnessError, Result};
use crate::record::{record_path, DataInfo, FitInfo, RecallResult, RunRecord, Timings, SCHEMA};
use crate::spec::{Cell, Corruption, Grid, ModelKind};

/// The version of the code that produced a record (git commit when built from a checkout).
pub const CODE_VERSION: &str = env!("PCMEM_CODE_VERSION");

/// How to run a grid.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder (records go under `<out>/runs`).
    pub out: PathBuf,
    /// `(i, n)`: run only cells whose index is `i - 1` modulo `n`.
    pub shard: Option<(usize, usize)>,
    /// Recompute cells that already have a record.
    pub force: bool,
    /// Where data is found.
    pub data: DataDirs,
    /// Show progress bars.
    pub progress: bool,
    /// Where the PCN and the autoencoder compute (`pcmem_model::device::parse`); Hopfield
    /// networks and the modern Hopfield network stay on the CPU.
    pub device: Device,
}

/// What a grid run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Cells computed now.
    pub ran: usize,
    /// Cells skipped because their record existed.
    pub skipped: usize,
    /// Seconds spent.
    pub seconds: f64,
}

/// The cells of this shard, with their record paths and whether they are done.
pub fn plan(grid: &Grid, opts: &RunOptions) -> Result<Vec<(Cell, PathBuf, bool)>> {
    if let Some((i, n)) = opts.shard {
        if n == 0 || i == 0 || i > n {
            return Err(HarnessError::Invalid(format!(
                "shard {i}/{n}: need 1 <= i <= n"
            )));
        }
    }
    Ok(grid
        .cells()
        .into_iter()
        .enumerate()
        .filter(|(k, _)| opts.shard.is_none_or(|(i, n)| k % n == i - 1))
        .map(|(_, c)| {
            let p = record_path(&opts.out, &grid.id, &grid.applied_profile, &c);
            let done = p.exists();
            (c, p, done)
        })
        .collect())
}

/// An upper bound of the training work of a cell in GFLOP (PCN by the formula of DESIGN.md
/// section 6 times the epoch limit; autoencoder forward+backward times epochs; 0 for one-shot
/// memories), for `--dry-run`.
pub fn estimate_gflop(grid: &Grid, cell: &Cell, d: usize) -> f64 {
    let (n, nimg) = (cell.hidden as f64, cell.n_images as f64);
    let get = |t: &toml::Table, a: &str, b: &str| {
        t.get(a).and_then(|v| v.get(b)).and_then(|v| v.as_integer())
    };
    match cell.model {
        ModelKind::Pcn => {
            let table = grid.cell_table(cell).unwrap_or_else(|_| grid.pcn.clone());
            let epochs = get(&table, "learning", "max_epochs").unwrap_or(1000) as f64;
            let steps = get(&table, "inference", "steps").unwrap_or(50) as f64;
            let pair = nimg * (d as f64 * n + (cell.layers as f64 - 1.0) * n * n);
            epochs * ((steps + 1.0) * 4.0 * pair + 2.0 * pair) / 1e9
        }
        ModelKind::Autoencoder => {
            let epochs = grid
                .autoencoder
                .get("max_epochs")
                .and_then(|v| v.as_integer())
                .unwrap_or(2000) as f64;
            let weights = 2.0 * d as f64 * n + (cell.layers as f64 - 1.0) * n * n;
            epochs * 6.0 * nimg * weights / 1e9
        }
        _ => 0.0,
    }
}

fn configure<T: Serialize + DeserializeOwned>(
    base: T,
    table: &toml::Table,
    fixed: serde_json::Value,
    what: &str,
) -> Result<T> {
    let mut value = serde_json::to_value(base).expect("configs serialise");
    let over = serde_json::to_value(table).expect("toml tables serialise");
    fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(x) if x.is_object() && v.is_object() => merge(x, v),
                        _ => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (a, b) => *a = b.clone(),
        }
    }
    merge(&mut value, &over);
    merge(&mut value, &fixed);
    serde_json::from_value(value).map_err(|e| HarnessError::Spec {
        file: format!("[{what}] settings"),
        message: e.to_string(),
    })
}

/// Builds the model of a cell; returns it with its resolved config as JSON.
fn build(
    grid: &Grid,
    cell: &Cell,
    d: usize,
    device: &Device,
) -> Result<(Box<dyn AssociativeMemory>, serde_json::Value)> {
    let cell_err = |e: String| HarnessError::Cell {
        grid: grid.id.clone(),
        cell: cell.id(),
        reason: e,
    };
    let table = &grid.cell_table(cell).map_err(cell_err)?;
    Ok(match cell.model {
        ModelKind::Pcn => {
            let fixed = serde_json::json!({"input_dim": d, "hidden_dim": cell.hidden, "layers": cell.layers, "seed": cell.seed});
            let cfg: PcnConfig = configure(PcnConfig::new(d, cell.hidden), table, fixed, "pcn")?;
            let json = serde_json::to_value(&cfg).expect("serialises");
            (
                Box::new(cfg.init(device).map_err(|e| cell_err(e.to_string()))?),
                json,
            )
        }
        ModelKind::Autoencoder => {
            let fixed = serde_json::json!({"hidden_dim": cell.hidden, "hidden_layers": cell.layers, "seed": cell.seed});
            let cfg: AutoencoderConfig =
                configure(AutoencoderConfig::default(), table, fixed, "autoencoder")?;
            let json = serde_json::to_value(&cfg).expect("serialises");
            (
                Box::new(
                    Autoencoder::new(cfg, d)
                        .and_then(|ae| ae.on_device(device))
                        .map_err(|e| cell_err(e.to_string()))?,
                ),
                json,
            )
        }
        ModelKind::ModernHopfield => {
            let cfg: ModernHopfieldConfig = configure(
                ModernHopfieldConfig::default(),
                table,
                serde_json::json!({}),
                "modern_hopfield",
            )?;
            let json = serde_json::to_value(&cfg).expect("serialises");
            (
                Box::new(ModernHopfield::new(cfg).map_err(|e| cell_err(e.to_string()))?),
                json,
            )
        }
        ModelKind::Hopfield => {
            let cfg: HopfieldConfig = configure(
                HopfieldConfig::default(),
                table,
                serde_json::json!({}),
                "hopfield",
            )?;
            let json = serde_json::to_value(&cfg).expect("serialises");
            (
                Box::new(ClassicalHopfield::new(cfg).map_err(|e| cell_err(e.to_string()))?),
                json,
            )
        }
        ModelKind::DenseAm => {
            let mut t = table.clone();
            let interaction: Interaction = match t.remove("interaction") {
                Some(v) => v
                    .try_into()
                    .map_err(|e: toml::de::Error| HarnessError::Spec {
                        file: "[dense_am] interaction".into(),
                        message: e.to_string(),
                    })?,
                None => Interaction::Polynomial { degree: 3 },
            };
            let cfg: HopfieldConfig = configure(
                HopfieldConfig::default(),
                &t,
                serde_json::json!({}),
                "dense_am",
            )?;
            let mut json = serde_json::to_value(&cfg).expect("serialises");
            json["interaction"] = serde_json::to_value(interaction).expect("serialises");
            (
                Box::new(DenseAm::new(cfg, interaction).map_err(|e| cell_err(e.to_string()))?),
                json,
            )
        }
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Trains one cell and evaluates every recall condition; writes nothing except the pictures.
/// `on_epoch` is called after every training epoch.
pub fn run_cell(
    grid: &Grid,
    cell: &Cell,
    opts: &RunOptions,
    record_file: &std::path::Path,
    on_epoch: &mut dyn FnMut(&FitProgress),
) -> Result<RunRecord> {
    let t0 = Instant::now();
    let id = DatasetId::from_name(&cell.dataset)?;
    let selection = match grid.train.subset.strip_prefix("class:") {
        Some(l) => Selection::Class {
            label: l.parse().expect("validated"),
            n: cell.n_images,
        },
        None => Selection::First(cell.n_images),
    };
    let split = if grid.train.split == "test" {
        Split::Test
    } else {
        Split::Train
    };
    let bipolar = cell.model.bipolar() || grid.train.binarise;
    let set = pcmem_data::load(id, split, &selection, &opts.data)?;
    let d = set.dim();
    let mut pixels = set.pixels.clone();
    if bipolar {
        pixels = binarise(&pixels, 0.5);
    }
    let truth = Tensor::from_vec(pixels.clone(), (set.len(), d), &Device::Cpu)
        .map_err(|e| HarnessError::Invalid(e.to_string()))?;
    let load_s = t0.elapsed().as_secs_f64();
    let (mut model, model_config) = build(grid, cell, d, &opts.device)?;
    let cell_err = |e: pcmem_model::MemoryError| HarnessError::Cell {
        grid: grid.id.clone(),
        cell: cell.id(),
        reason: e.to_string(),
    };
    let t1 = Instant::now();
    let fit = model.fit_with(&truth, on_epoch).map_err(cell_err)?;
    let fit_s = t1.elapsed().as_secs_f64();
    let mut recall = Vec::new();
    let fill = if bipolar { -1.0 } else { 0.0 };
    for corruption in grid.corruptions() {
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
                pcmem_data::transforms::apply_mask(&mut cue, &m, fill);
                Some(
                    Tensor::from_vec(m, (1, d), &Device::Cpu)
                        .map_err(|e| HarnessError::Invalid(e.to_string()))?,
                )
            }
        };
        let cue_t = Tensor::from_vec(cue.clone(), (set.len(), d), &Device::Cpu)
            .map_err(|e| HarnessError::Invalid(e.to_string()))?;
        let out = model.recall(&cue_t, known.as_ref()).map_err(cell_err)?;
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
        let picture = if grid.recall.keep_images > 0 {
            let k = grid.recall.keep_images.min(set.len());
            let name = format!(
                "{}__{}.png",
                cell.id(),
                corruption.to_string().replace(':', "_")
            );
            let path = record_file.with_file_name(&name);
            let to01 = |v: &[f32]| -> Vec<f32> {
                if bipolar {
                    v.iter().map(|x| 0.5 * (x + 1.0)).collect()
                } else {
                    v.to_vec()
                }
            };
            let (orig, rec) = (to01(&pixels), to01(&recalled));
            let error: Vec<f32> = orig.iter().zip(&rec).map(|(a, b)| (a - b).abs()).collect();
            crate::plots::picture_rows(
                &path,
                set.shape,
                k,
                &[
                    ("original", &orig),
                    ("corrupted", &to01(&cue)),
                    ("recalled", &rec),
                    ("|error|", &error),
                ],
            )?;
            Some(name)
        } else {
            None
        };
        recall.push(RecallResult {
            corruption: corruption.to_string(),
            threshold: grid.threshold(&corruption),
            mse,
            steps: out.steps,
            converged: out.converged,
            seconds,
            picture,
        });
    }
    Ok(RunRecord {
        schema: SCHEMA,
        grid: grid.id.clone(),
        profile: grid.applied_profile.clone(),
        cell: cell.clone(),
        model_config,
        parameters: model.parameter_count(),
        data: DataInfo {
            dataset: cell.dataset.clone(),
            split: grid.train.split.clone(),
            selection: format!("{selection:?}"),
            sha256: set.sha256.clone(),
            source: set.source.clone(),
            n: set.len(),
            shape: [set.shape.0, set.shape.1, set.shape.2],
            pixel_range: if bipolar {
                "bipolar".into()
            } else {
                "zero_one".into()
            },
        },
        code_version: CODE_VERSION.to_string(),
        device: pcmem_model::device::name(&opts.device),
        finished_unix: unix_now(),
        timings: Timings { load_s, fit_s },
        fit: FitInfo {
            curve: fit.curve,
            converged: fit.converged,
            stop: fit.stop,
            resolved: fit.resolved,
        },
        recall,
    })
}

/// Runs every cell of the grid (this shard) that has no record yet (all with `force`).
pub fn run_grid(grid: &Grid, opts: &RunOptions) -> Result<RunSummary> {
    let start = Instant::now();
    let cells = plan(grid, opts)?;
    let todo: Vec<_> = cells
        .iter()
        .filter(|(_, _, done)| opts.force || !done)
        .collect();
    let mut summary = RunSummary {
        skipped: cells.len() - todo.len(),
        ..Default::default()
    };
    let multi = MultiProgress::new();
    let bar = if opts.progress {
        let b = multi.add(ProgressBar::new(todo.len() as u64));
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} cells {elapsed_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_prefix(grid.id.clone());
        if summary.skipped > 0 {
            b.println(format!(
                "{}: {} cells already done, skipped",
                grid.id, summary.skipped
            ));
        }
        Some(b)
    } else {
        None
    };
    let total = todo.len();
    for (k, (cell, path, _)) in todo.into_iter().enumerate() {
        if let Some(b) = &bar {
            b.set_message(cell.id());
        }
        let t = Instant::now();
        // Per-cell progress: a bar of epochs on a terminal, a log line every 30 s otherwise.
        let cell_bar = bar.as_ref().map(|_| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] epoch {pos}/{len} {elapsed_precise} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix("training");
            b
        });
        let mut last_log = Instant::now();
        let mut on_epoch = |p: &FitProgress| {
            let Some(b) = &cell_bar else { return };
            b.set_length(p.max_epochs as u64);
            b.set_position(p.epoch as u64);
            b.set_message(format!("loss {:.4e}  MSE {:.2e}", p.loss, p.mse));
            if b.is_hidden() && last_log.elapsed().as_secs() >= 30 {
                last_log = Instant::now();
                eprintln!(
                    "{} [{}/{total}] {}: epoch {}/{} loss {:.4e} MSE {:.2e} ({:.0} s)",
                    grid.id,
                    k + 1,
                    cell.id(),
                    p.epoch,
                    p.max_epochs,
                    p.loss,
                    p.mse,
                    t.elapsed().as_secs_f64()
                );
            }
        };
        let rec = run_cell(grid, cell, opts, path, &mut on_epoch);
        if let Some(b) = cell_bar {
            b.finish_and_clear();
        }
        let rec = rec?;
        rec.write(path)?;
        summary.ran += 1;
        if let Some(b) = &bar {
            b.inc(1);
            // Without a terminal the bar is hidden: log one line per cell instead.
            if b.is_hidden() {
                let recalled: Vec<String> = rec
                    .recall
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}/{}",
                            r.corruption,
                            r.mse.iter().filter(|&&m| m < r.threshold).count(),
                            r.mse.len()
                        )
                    })
                    .collect();
                eprintln!(
                    "{} [{}/{total}] {} {:.1} s: {}",
                    grid.id,
                    k + 1,
                    cell.id(),
                    t.elapsed().as_secs_f64(),
                    recalled.join(", ")
                );
            }
        }
    }
    if let Some(b) = bar {
        b.finish_with_message("done");
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

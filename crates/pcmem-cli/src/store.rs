//! `pcmem store` and `pcmem recall`: your own images as memories.
//!
//! A stored memory is a folder: `manifest.json` (format, pcmem version, model, image shape,
//! the stored images' names, the data checksum, the training curve), the model's own files
//! (`pcn/` or `autoencoder/`: config and weights; the Hopfield networks keep nothing but
//! their stored patterns and settings), the stored pixels (`stored.f32`, little-endian, for naming
//! the nearest stored image) and `curve.png`, the training curve.

use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use pcmem_baselines::Autoencoder;
use pcmem_data::folder::{load_folder, read_rgb, to_row};
use pcmem_data::transforms::{apply_mask, binarise};
use pcmem_harness::candle_core::{Device, Tensor};
use pcmem_harness::models::{resolve_table, Shape};
use pcmem_harness::spec::{Corruption, ModelKind};
use pcmem_model::{
    AssociativeMemory, FitProgress, GradientScale, NoiseRelaxation, Optimizer, Pcn, PcnConfig,
};
use serde::{Deserialize, Serialize};

use crate::BadInput;

/// Version of the stored-memory layout; another one is refused with the reason.
pub const FORMAT: u32 = 1;

/// What `manifest.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Version of pcmem that stored it.
    pub pcmem: String,
    /// Git version of the code that stored it.
    pub code_version: String,
    /// Registered name of the model.
    pub model: String,
    /// The model's resolved settings.
    pub config: serde_json::Value,
    /// Channels, height, width of every stored image.
    pub shape: [usize; 3],
    /// File names of the stored images, in order.
    pub images: Vec<String>,
    /// The folder they came from.
    pub source: String,
    /// SHA-256 of the stored pixels.
    pub sha256: String,
    /// Training loss per epoch.
    pub curve: Vec<f64>,
    /// Why training stopped.
    pub stop: String,
}

/// Options of `pcmem store`.
pub struct Store {
    pub dir: PathBuf,
    pub out: PathBuf,
    pub model: String,
    pub size: Option<(u32, u32)>,
    pub hidden: usize,
    pub layers: usize,
    pub max_epochs: usize,
    pub target_mse: f64,
}

/// `WxH`, e.g. `32x32`.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let bad = || BadInput(format!("--size `{s}`: expected WIDTHxHEIGHT, e.g. 32x32"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if w == 0 || h == 0 {
        return Err(bad().into());
    }
    Ok((w, h))
}

/// The training recipe of the shipped grids (`experiments/recipe.toml`) for `d` inputs.
pub fn recipe(d: usize, hidden: usize, layers: usize, max_epochs: usize, target: f64) -> PcnConfig {
    let mut cfg = PcnConfig::new(d, hidden);
    cfg.layers = layers;
    cfg.learning.alpha = 5e-4;
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.gradient_scale = GradientScale::Mean;
    cfg.learning.max_epochs = max_epochs;
    cfg.learning.target_mse = Some(target);
    cfg.inference.gamma = 0.03;
    cfg.inference.steps = 60;
    cfg.recall.gamma = 0.03;
    cfg.recall.steps = 4000;
    cfg.recall.iterations = 10;
    cfg.recall.noise_relaxation = NoiseRelaxation::Training;
    cfg.recall.free_pixel_rate = Some(1.0);
    cfg
}

fn user<E: std::fmt::Display>(e: E) -> anyhow::Error {
    BadInput(e.to_string()).into()
}

/// A trained memory, by what it takes to save it.
enum Trained {
    Pcn(Box<Pcn>),
    Autoencoder(Box<Autoencoder>),
    /// Rebuilt from its settings and the stored patterns at recall time.
    OneShot,
}

/// `pcmem store DIR --out MODEL`.
pub fn store(s: &Store) -> anyhow::Result<()> {
    let kind = ModelKind::from_name(&s.model).map_err(user)?;
    let mut set = load_folder(&s.dir, s.size).map_err(user)?;
    if kind.bipolar() {
        set.pixels = binarise(&set.pixels, 0.5);
    }
    let (c, h, w) = set.shape;
    let d = set.dim();
    eprintln!(
        "storing {} images of {w}x{h} RGB from {}{} in a {}{}",
        set.len(),
        s.dir.display(),
        if s.size.is_some() { " (resized)" } else { "" },
        kind.name(),
        if kind.bipolar() {
            " (binarised to +-1)"
        } else {
            ""
        },
    );
    pcmem_harness::atomic::check_writable(&s.out)?;
    let patterns = Tensor::from_vec(set.pixels.clone(), (set.len(), d), &Device::Cpu)?;
    let shape = Shape {
        input_dim: d,
        hidden: s.hidden,
        layers: s.layers,
        seed: 0,
        n_images: set.len(),
    };
    // The PCN and the autoencoder are saved trained; every other registered model stores in
    // one shot and is rebuilt from its settings and the stored images at recall time.
    let (mut trained, config): (Trained, serde_json::Value) = match kind.name() {
        "pcn" => {
            let cfg = recipe(d, s.hidden, s.layers, s.max_epochs, s.target_mse);
            cfg.validate().map_err(user)?;
            let json = serde_json::to_value(&cfg)?;
            (Trained::Pcn(Box::new(cfg.init(&Device::Cpu)?)), json)
        }
        _ => {
            let mut table = toml::Table::new();
            let ae = kind.name() == "autoencoder";
            if ae {
                table.insert("max_epochs".into(), (s.max_epochs as i64).into());
                table.insert("target_mse".into(), s.target_mse.into());
            }
            let r = resolve_table(kind, &table, shape).map_err(user)?;
            if ae {
                let cfg = serde_json::from_value(r.config.clone())?;
                (
                    Trained::Autoencoder(Box::new(Autoencoder::new(cfg, d)?)),
                    r.config,
                )
            } else {
                (Trained::OneShot, r.config)
            }
        }
    };
    let bar = ProgressBar::new(s.max_epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "training [{bar:30}] epoch {pos}/{len} {elapsed_precise} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut on_epoch = |p: &FitProgress| {
        bar.set_length(p.max_epochs as u64);
        bar.set_position(p.epoch as u64);
        bar.set_message(format!("MSE {:.2e} (target {:.0e})", p.mse, s.target_mse));
    };
    let fit = match &mut trained {
        Trained::Pcn(m) => m.fit_with(&patterns, &mut on_epoch),
        Trained::Autoencoder(m) => m.fit_with(&patterns, &mut on_epoch),
        Trained::OneShot => rebuild(kind, &config, shape)?.fit(&patterns),
    }
    .map_err(|e| anyhow::anyhow!("training: {e}"))?;
    bar.finish_and_clear();
    match &trained {
        Trained::Pcn(m) => m.save(s.out.join("pcn"))?,
        Trained::Autoencoder(m) => m.save(&s.out.join("autoencoder"))?,
        Trained::OneShot => {}
    }
    let bytes: Vec<u8> = set.pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    pcmem_harness::atomic::write_atomic(&s.out.join("stored.f32"), &bytes)?;
    if !fit.curve.is_empty() {
        pcmem_harness::plots::curve(
            &s.out.join("curve.png"),
            &format!("storing {} images in a {}", set.len(), kind.name()),
            "training loss",
            &fit.curve,
        )?;
    }
    let manifest = Manifest {
        format: FORMAT,
        pcmem: env!("CARGO_PKG_VERSION").into(),
        code_version: pcmem_harness::run::CODE_VERSION.into(),
        model: kind.name().into(),
        config,
        shape: [c, h, w],
        images: set.names.clone(),
        source: set.source.clone(),
        sha256: set.sha256.clone(),
        curve: fit.curve.clone(),
        stop: fit.stop.clone(),
    };
    let text = serde_json::to_string_pretty(&manifest).expect("manifests serialise");
    pcmem_harness::atomic::write_atomic(&s.out.join("manifest.json"), text.as_bytes())?;
    println!(
        "stored {} images in {} ({}; {} epochs{}){}",
        set.len(),
        s.out.display(),
        kind.name(),
        fit.curve.len(),
        if fit.stop.is_empty() {
            String::new()
        } else {
            format!(", {}", fit.stop)
        },
        if fit.curve.is_empty() {
            String::new()
        } else {
            format!("; training curve: {}", s.out.join("curve.png").display())
        }
    );
    Ok(())
}

/// A one-shot memory (the Hopfield networks) from its saved settings.
fn rebuild(
    kind: ModelKind,
    config: &serde_json::Value,
    shape: Shape,
) -> anyhow::Result<Box<dyn AssociativeMemory>> {
    let mut plain = config.clone();
    if let Some(o) = plain.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    let table: toml::Table = toml::Table::try_from(plain).map_err(user)?;
    let r = resolve_table(kind, &table, shape).map_err(user)?;
    pcmem_harness::models::build(&r, &Device::Cpu).map_err(|e| anyhow::anyhow!("{e}"))
}

fn load_manifest(model: &Path) -> anyhow::Result<Manifest> {
    let path = model.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        user(format!(
            "{}: {e}; is {} a memory made by `pcmem store`?",
            path.display(),
            model.display()
        ))
    })?;
    #[derive(Deserialize)]
    struct Head {
        format: u32,
        #[serde(default)]
        pcmem: String,
    }
    let head: Head = serde_json::from_str(&text)
        .map_err(|e| user(format!("{}: not a pcmem manifest ({e})", path.display())))?;
    if head.format != FORMAT {
        return Err(user(format!(
            "{}: stored by pcmem {} in format {}; this pcmem ({}) reads format {FORMAT}: store the images again",
            path.display(),
            head.pcmem,
            head.format,
            env!("CARGO_PKG_VERSION")
        )));
    }
    serde_json::from_str(&text).map_err(|e| user(format!("{}: {e}", path.display())))
}

/// What a cue is made from.
enum Cue {
    Corruption(Corruption),
    MaskImage(PathBuf),
}

fn parse_cue(s: &str) -> anyhow::Result<Cue> {
    let p = Path::new(s);
    if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")) || p.is_file() {
        return Ok(Cue::MaskImage(p.to_path_buf()));
    }
    Corruption::parse(s).map(Cue::Corruption).map_err(|e| {
        user(format!(
            "--corrupt: {e}; or give a mask image (white = known)"
        ))
    })
}

/// `pcmem recall MODEL IMAGE... --corrupt SPEC --out DIR`.
pub fn recall(
    model: &Path,
    images: &[PathBuf],
    corrupt: &str,
    out: &Path,
    seed: u64,
) -> anyhow::Result<()> {
    let m = load_manifest(model)?;
    let kind = ModelKind::from_name(&m.model).map_err(user)?;
    let [c, h, w] = m.shape;
    let d = c * h * w;
    let stored_path = model.join("stored.f32");
    let stored: Vec<f32> = std::fs::read(&stored_path)
        .with_context(|| format!("reading {}", stored_path.display()))?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if stored.len() != m.images.len() * d {
        return Err(user(format!(
            "{}: {} values for {} images of {d}",
            stored_path.display(),
            stored.len(),
            m.images.len()
        )));
    }
    let shape = Shape {
        input_dim: d,
        hidden: 0,
        layers: 0,
        seed: 0,
        n_images: m.images.len(),
    };
    let memory: Box<dyn AssociativeMemory> = match kind.name() {
        "pcn" => Box::new(
            Pcn::load(model.join("pcn"), &Device::Cpu)
                .map_err(|e| user(format!("{}: {e}", model.join("pcn").display())))?,
        ),
        "autoencoder" => {
            Box::new(Autoencoder::load(&model.join("autoencoder"), &Device::Cpu).map_err(user)?)
        }
        _ => {
            let mut mem = rebuild(kind, &m.config, shape)?;
            let patterns = Tensor::from_vec(stored.clone(), (m.images.len(), d), &Device::Cpu)?;
            mem.fit(&patterns).map_err(|e| anyhow::anyhow!("{e}"))?;
            mem
        }
    };
    let bipolar = kind.bipolar();
    let cue_kind = parse_cue(corrupt)?;
    let size = (w as u32, h as u32);
    let mut originals = Vec::new();
    for f in images {
        let img = read_rgb(f).map_err(user)?;
        if img.dimensions() != size {
            eprintln!(
                "{}: {}x{} resized to the memory's {w}x{h}",
                f.display(),
                img.width(),
                img.height()
            );
        }
        let row = to_row(&img, size);
        originals.push(if bipolar { binarise(&row, 0.5) } else { row });
    }
    let known: Option<Vec<f32>> = match &cue_kind {
        Cue::Corruption(Corruption::Noise(_)) => None,
        Cue::Corruption(Corruption::Mask(mask)) => Some(mask.build((c, h, w), seed)),
        Cue::MaskImage(p) => {
            let img = read_rgb(p).map_err(user)?;
            let lum = to_row(&img, size);
            let plane: Vec<f32> = (0..h * w)
                .map(|i| {
                    if (lum[i] + lum[h * w + i] + lum[2 * h * w + i]) / 3.0 > 0.5 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            if !plane.iter().any(|&v| v > 0.0) {
                return Err(user(format!(
                    "{}: the mask leaves no pixel known (white = known)",
                    p.display()
                )));
            }
            Some(plane.repeat(c))
        }
    };
    let mut cues = Vec::with_capacity(originals.len() * d);
    for row in &originals {
        let mut cue = row.clone();
        match (&cue_kind, &known) {
            (Cue::Corruption(Corruption::Noise(noise)), _) => {
                noise.apply(&mut cue, seed);
                if bipolar {
                    cue = binarise(&cue, 0.0);
                }
            }
            (_, Some(k)) => apply_mask(&mut cue, k, if bipolar { -1.0 } else { 0.0 }),
            _ => {}
        }
        cues.extend(cue);
    }
    let n = originals.len();
    let cue_t = Tensor::from_vec(cues.clone(), (n, d), &Device::Cpu)?;
    let known_t = known
        .as_ref()
        .map(|k| Tensor::from_vec(k.clone(), (1, d), &Device::Cpu))
        .transpose()?;
    let got = memory
        .recall(&cue_t, known_t.as_ref())
        .map_err(|e| anyhow::anyhow!("recall: {e}"))?;
    let recalled: Vec<f32> = got.images.flatten_all()?.to_vec1()?;
    let mse = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64
    };
    for (k, f) in images.iter().enumerate() {
        let r = &recalled[k * d..(k + 1) * d];
        let (best, best_mse) = stored
            .chunks(d)
            .enumerate()
            .map(|(i, s)| (i, mse(r, s)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one stored image");
        let stem = f
            .file_stem()
            .map_or_else(|| format!("image{k}"), |s| s.to_string_lossy().into_owned());
        let png = out.join(format!("{stem}__recall.png"));
        let to01 = |v: &[f32]| -> Vec<f32> {
            if bipolar {
                v.iter().map(|x| 0.5 * (x + 1.0)).collect()
            } else {
                v.to_vec()
            }
        };
        side_by_side(&png, (c, h, w), &to01(&cues[k * d..(k + 1) * d]), &to01(r))?;
        println!(
            "{}: nearest stored image {} (MSE {best_mse:.2e}); cue and recall: {}",
            f.display(),
            m.images[best],
            png.display()
        );
    }
    Ok(())
}

/// The cue and the recalled image next to each other, upscaled so small images stay visible.
fn side_by_side(
    path: &Path,
    (c, h, w): (usize, usize, usize),
    cue: &[f32],
    rec: &[f32],
) -> anyhow::Result<()> {
    let scale = (128 / h.max(1)).clamp(1, 8) as u32;
    let gap = 4u32;
    let (sw, sh) = (w as u32 * scale, h as u32 * scale);
    let mut img = image::RgbImage::from_pixel(2 * sw + gap, sh, image::Rgb([255, 255, 255]));
    for (panel, data) in [cue, rec].iter().enumerate() {
        for y in 0..sh {
            for x in 0..sw {
                let i = (y / scale) as usize * w + (x / scale) as usize;
                let px = |ch: usize| {
                    (data[ch.min(c - 1) * h * w + i].clamp(0.0, 1.0) * 255.0).round() as u8
                };
                img.put_pixel(
                    panel as u32 * (sw + gap) + x,
                    y,
                    image::Rgb([px(0), px(1), px(2)]),
                );
            }
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)?;
    pcmem_harness::atomic::write_atomic(path, bytes.get_ref())?;
    Ok(())
}

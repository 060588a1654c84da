//! Trains a generative PCN on the first N training images of a dataset in the data directory
//! (CIFAR-10 unless `--dataset`; `--class` picks one class) and reports how many it recalls
//! from Gaussian noise (variance 0.2, MSE < 0.005) and from the top rows (`--keep-rows`,
//! default half; MSE < 0.001), next to the same network untrained.
//!
//! ```text
//! cargo run --release -p pcmem-model --example recall_demo -- --data-dir ../shared/data --n 10
//! ```
//! The data directory is `--data-dir`, else `PCMEM_DATA_DIR` (layouts: `pcmem data list`).
//! The 50 Tiny ImageNet goldfish from 1/8 of their rows, with a saved model:
//! ```text
//! cargo run --release -p pcmem-model --example recall_demo -- --data-dir ../shared/data \
//!   --dataset tiny-imagenet --class 0 --n 50 --hidden 1024 --keep-rows 0.125 --save /tmp/gf
//! ```

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Parser;
use pcmem_model::{
    per_row_mse, GradientScale, KnownPrecision, MemoryPrior, NoiseRelaxation, Optimizer, Pcn,
    PcnConfig, ValueInit,
};

/// Train a PCN on CIFAR-10 images and test recall.
#[derive(Parser, Debug)]
struct Args {
    /// Data directory (default: $PCMEM_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Dataset (cifar10, tiny-imagenet, imagenet, mnist).
    #[arg(long, default_value = "cifar10")]
    dataset: String,
    /// Store the first N images of this class instead of the first N (0 = goldfish in
    /// Tiny ImageNet).
    #[arg(long)]
    class: Option<u32>,
    /// Fraction of the top rows known in partial recall.
    #[arg(long, default_value_t = 0.5)]
    keep_rows: f64,
    /// Precision of the sensory error during recall from noise (1: the energy as written;
    /// smaller trusts the cue less and the memory more).
    #[arg(long, default_value_t = 1.0)]
    sensory_precision: f64,
    /// Precision of the known pixels' errors in partial recall: a number (1: the paper's
    /// energy) or `estimated` (from the training errors; recall.known_precision).
    #[arg(long, default_value = "1")]
    known_precision: String,
    /// With --trace: an image stops once an application of F changes it by a per-pixel MSE
    /// below this value.
    #[arg(long)]
    step_stop: Option<f64>,
    /// Give partial recall one mask row per image (takes the full-network path).
    #[arg(long)]
    per_row_mask: bool,
    /// For every image not recalled from its known pixels, print the stored image those
    /// pixels are nearest to (is the cue ambiguous among the stored images?).
    #[arg(long)]
    ambiguity: bool,
    /// Skip recall from noise.
    #[arg(long)]
    skip_noise: bool,
    /// Number of images to store.
    #[arg(long, default_value_t = 10)]
    n: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Maximum training epochs.
    #[arg(long, default_value_t = 800)]
    epochs: usize,
    /// Learning rate (Adam, batch-mean gradients).
    #[arg(long, default_value_t = 5e-4)]
    alpha: f64,
    /// Inference rate, in training and recall.
    #[arg(long, default_value_t = 0.03)]
    gamma: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Inference steps T per training epoch.
    #[arg(long, default_value_t = 60)]
    train_steps: usize,
    /// Inference steps of partial recall (and of each application of F with
    /// --noise-relaxation recall).
    #[arg(long, default_value_t = 1000)]
    recall_steps: usize,
    /// Inference rate during recall (default: --gamma).
    #[arg(long)]
    recall_gamma: Option<f64>,
    /// Heavy-ball momentum of the value nodes during recall (0: plain steps).
    #[arg(long, default_value_t = 0.0)]
    recall_momentum: f64,
    /// What one application of F runs: `training` (the training inference, T = --train-steps)
    /// or `recall` (--recall-steps at the recall rate).
    #[arg(long, default_value = "training")]
    noise_relaxation: String,
    /// Applications of F when recalling from noise.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Stop training at this sensory MSE (0 disables).
    #[arg(long, default_value_t = 1e-4)]
    target_mse: f64,
    /// Keep each image's hidden value nodes from one epoch to the next.
    #[arg(long)]
    persistent: bool,
    /// Number of hidden layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Starting std of the hidden value nodes (0: start at zero).
    #[arg(long, default_value_t = 0.0)]
    init_std: f64,
    /// Free top layer instead of a learned memory vector.
    #[arg(long)]
    free_prior: bool,
    /// Step size of the unknown pixels in partial recall (default: the recall gamma).
    #[arg(long)]
    free_rate: Option<f64>,
    /// Print the recall from noise after each of the first K applications of F (one inference
    /// run each), with the energy of each cue clamped: shows where F helps and where it drifts.
    #[arg(long, default_value_t = 0)]
    trace: usize,
    /// Start recall from the clean images instead of noisy ones (with --trace: how fast F drifts
    /// away from a stored image).
    #[arg(long)]
    clean: bool,
    /// Save the trained model into this folder.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Load a saved model from this folder instead of training (recall settings from the flags).
    #[arg(long)]
    load: Option<PathBuf>,
}

fn load_images(
    dir: &std::path::Path,
    args: &Args,
) -> Result<(Tensor, (usize, usize, usize)), String> {
    let id = pcmem_data::DatasetId::from_name(&args.dataset).map_err(|e| e.to_string())?;
    let sel = match args.class {
        Some(label) => pcmem_data::Selection::Class { label, n: args.n },
        None => pcmem_data::Selection::First(args.n),
    };
    let dirs = pcmem_data::DataDirs::from_env(Some(dir.to_path_buf()));
    let set =
        pcmem_data::load(id, pcmem_data::Split::Train, &sel, &dirs).map_err(|e| e.to_string())?;
    let t = Tensor::from_vec(set.pixels.clone(), (set.len(), set.dim()), &Device::Cpu)
        .map_err(|e| e.to_string())?;
    Ok((t, set.shape))
}

fn report(
    name: &str,
    pcn: &Pcn,
    images: &Tensor,
    shape: (usize, usize, usize),
    opts: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = images.dims()[0];
    let d = images.dims()[1];
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(7);
    let normal = rand_distr::Normal::new(0f32, 0.2f32.sqrt())?;
    let noise: Vec<f32> = (0..images.elem_count())
        .map(|_| rand::Rng::sample(&mut rng, normal))
        .collect();
    let noise = Tensor::from_vec(noise, images.dims(), &Device::Cpu)?;
    let noise = if opts.clean {
        noise.zeros_like()?
    } else {
        noise
    };
    let t = Instant::now();
    // Sensory precision p during recall from noise, E = p/2 |c - mu_0|^2 + (upper layers):
    // the same as the unit-precision energy of the cue and first weights scaled by sqrt(p), with
    // the prediction scaled back.
    let scale = opts.sensory_precision.sqrt();
    let scaled = if (scale - 1.0).abs() > 0.0 {
        let mut w = pcn.weights().to_vec();
        w[0] = w[0].affine(scale, 0.0)?;
        let mut m = pcn.clone();
        m.set_parameters(w, pcn.prior().cloned())?;
        m
    } else {
        pcn.clone()
    };
    let mut out = if opts.skip_noise {
        images.clone()
    } else {
        scaled
            .recall_noisy(&(images + noise)?.affine(scale, 0.0)?)?
            .0
            .affine(1.0 / scale, 0.0)?
    };
    // With --step-stop TAU, an image stops taking applications of F once one changes it by a
    // per-pixel MSE below TAU (a label-free rule; TAU e.g. the training sensory MSE).
    let mut frozen = vec![false; n];
    for k in 1..opts.trace {
        let (next, info) = pcn.recall_noisy(&out)?;
        let mse = per_row_mse(&out, images)?;
        let step = per_row_mse(&next, &out)?;
        println!(
            "  F^{k}: {}/{n} (median {:.2e}), energy/img of F^{k} clamped {:.4}, median step {:.2e}, frozen {}",
            mse.iter().filter(|&&m| m < 0.005).count(),
            median(&mse),
            info.runs[0].energy / n as f64,
            median(&step),
            frozen.iter().filter(|&&f| f).count()
        );
        if let Some(tau) = opts.step_stop {
            for (f, &st) in frozen.iter_mut().zip(&step) {
                if (st as f64) < tau {
                    *f = true;
                }
            }
            let keep: Vec<f32> = frozen.iter().map(|&f| f as u8 as f32).collect();
            let keep = Tensor::from_vec(keep, (n, 1), &Device::Cpu)?;
            out = (out.broadcast_mul(&keep)? + next.broadcast_mul(&keep.affine(-1.0, 1.0)?)?)?;
        } else {
            out = next;
        }
    }
    let mse = per_row_mse(&out, images)?;
    let k_noise = mse.iter().filter(|&&m| m < 0.005).count();
    let mask = pcmem_data::transforms::Mask::TopRows {
        fraction: opts.keep_rows,
    }
    .build(shape, 0);
    let mask = Tensor::from_vec(mask, (1, d), &Device::Cpu)?;
    let cue = images.broadcast_mul(&mask)?;
    // One mask row lets free_pixel_rate = 1 recall run on the known pixels only; a per-row
    // mask takes the full network (same result, for timing the difference).
    let mask_arg = if opts.per_row_mask {
        mask.broadcast_as(images.dims())?.contiguous()?
    } else {
        mask.clone()
    };
    let tp = Instant::now();
    let (out, info) = pcn.recall_partial(&cue, &mask_arg)?;
    println!(
        "partial recall: known-pixel precision {:.1}, {} steps in {:.2} s",
        pcn.known_precision()?,
        info.runs[0].steps,
        tp.elapsed().as_secs_f64()
    );
    let mse_half = per_row_mse(&out, images)?;
    if opts.ambiguity {
        print_ambiguity(images, &out, &mask, &mse_half)?;
    }
    // Energy diagnostics: the stored images fully clamped, relaxed as long as recall.
    let mut probe = pcn.config().clone();
    probe.inference.gamma = probe.recall.gamma;
    probe.inference.steps = probe.recall.steps;
    let mut deep = Pcn::new(probe, &Device::Cpu)?;
    deep.set_parameters(pcn.weights().to_vec(), pcn.prior().cloned())?;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut x = deep.init_values(images, &mut rng)?;
    let stored = deep.infer(&mut x)?;
    let mut x = deep.init_values(&out, &mut rng)?;
    let recalled = deep.infer(&mut x)?;
    println!(
        "energy per image: stored images clamped {:.4}, end of top-half recall {:.4}, its output clamped {:.4}",
        stored.energy / n as f64,
        info.runs[0].energy / n as f64,
        recalled.energy / n as f64
    );
    let k_half = mse_half.iter().filter(|&&m| m < 0.001).count();
    println!(
        "{name:>9}: noise var 0.2 -> {k_noise}/{n} recalled (median MSE {:.2e}); top {} of rows -> {k_half}/{n} (median MSE {:.2e}, {} steps) [{:.1} s]",
        median(&mse),
        opts.keep_rows,
        median(&mse_half),
        info.runs[0].steps,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// For each stored image not recalled from its known pixels: which stored image those pixels
/// are nearest to (mean squared distance over the known pixels), and how near its own.
fn print_ambiguity(
    images: &Tensor,
    recalled: &Tensor,
    mask: &Tensor,
    recall_mse: &[f32],
) -> Result<(), Box<dyn std::error::Error>> {
    let known = mask.sum_all()?.to_scalar::<f32>()?;
    let cues = images.broadcast_mul(mask)?;
    let norms = cues.sqr()?.sum_keepdim(1)?;
    let gram = cues.matmul(&cues.t()?)?;
    let dist = ((norms.broadcast_add(&norms.t()?)? - gram.affine(2.0, 0.0)?)? / known as f64)?
        .to_vec2::<f32>()?;
    for (i, row) in dist.iter().enumerate() {
        if recall_mse[i] < 0.001 {
            continue;
        }
        let (j, dj) = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(j, &d)| (j, d))
            .unwrap_or((i, f32::NAN));
        let to_j = per_row_mse(&recalled.narrow(0, i, 1)?, &images.narrow(0, j, 1)?)?[0];
        println!(
            "  image {i}: recall MSE {:.2e}; on the known pixels the nearest other image is {j} \
             (MSE {dj:.2e}, median over the others {:.2e}); recalled vs image {j}: MSE {to_j:.2e}",
            recall_mse[i],
            median(row)
        );
    }
    Ok(())
}

fn median(v: &[f32]) -> f32 {
    let mut v = v.to_vec();
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = args
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("PCMEM_DATA_DIR").map(PathBuf::from))
        .ok_or(
            "no data directory: pass --data-dir DIR or set PCMEM_DATA_DIR (e.g. ../shared/data)",
        )?;
    let (images, shape) = load_images(&dir, &args)?;
    let mut cfg = PcnConfig::new(images.dims()[1], args.hidden);
    cfg.seed = args.seed;
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.gradient_scale = GradientScale::Mean;
    cfg.learning.alpha = args.alpha;
    cfg.learning.max_epochs = args.epochs;
    cfg.learning.target_mse = (args.target_mse > 0.0).then_some(args.target_mse);
    cfg.learning.persistent_values = args.persistent;
    cfg.layers = args.layers;
    if args.init_std > 0.0 {
        cfg.value_init = ValueInit::Random { std: args.init_std };
    }
    if args.free_prior {
        cfg.memory_prior = MemoryPrior::Free;
    }
    cfg.inference.gamma = args.gamma;
    cfg.inference.steps = args.train_steps;
    cfg.recall.gamma = args.recall_gamma.unwrap_or(args.gamma);
    cfg.recall.steps = args.recall_steps;
    cfg.recall.iterations = args.iterations;
    cfg.recall.momentum = args.recall_momentum;
    cfg.recall.noise_relaxation = match args.noise_relaxation.as_str() {
        "training" => NoiseRelaxation::Training,
        "recall" => NoiseRelaxation::Recall,
        v => return Err(format!("--noise-relaxation {v}: `training` or `recall`").into()),
    };
    cfg.recall.known_precision = match args.known_precision.as_str() {
        "estimated" => KnownPrecision::Estimated,
        v => KnownPrecision::Fixed {
            value: v
                .parse()
                .map_err(|_| format!("--known-precision {v}: a number or `estimated`"))?,
        },
    };
    cfg.recall.free_pixel_rate = args.free_rate;
    println!("config: {}", serde_json::to_string(&cfg)?);
    let mut pcn = cfg.init(&Device::Cpu)?;
    let untrained = pcn.clone();
    if let Some(dir) = &args.load {
        let mut pcn = Pcn::load(dir, &Device::Cpu)?;
        *pcn.recall_config_mut() = cfg.recall.clone();
        if pcn.error_mse().is_none() {
            // Checkpoints saved before the errors were kept: measure them on the stored images.
            pcn.measure_errors(&images)?;
        }
        println!("error MSE per layer: {:?}", pcn.error_mse());
        report("loaded", &pcn, &images, shape, &args)?;
        return Ok(());
    }
    let t = Instant::now();
    let rep = pcn.train_with(&images, |e| {
        if e.epoch % 50 == 0 {
            println!(
                "epoch {:>5}  energy {:>12.4}  sensory MSE {:.3e}",
                e.epoch, e.energy, e.sensory_mse
            );
        }
    })?;
    let last = rep.epochs.last().expect("at least one epoch");
    println!(
        "trained {} epochs in {:.1} s, stop: {:?}, final sensory MSE {:.3e}",
        rep.epochs.len(),
        t.elapsed().as_secs_f64(),
        rep.stop,
        last.sensory_mse
    );
    if let Some(dir) = &args.save {
        pcn.save(dir)?;
    }
    report("trained", &pcn, &images, shape, &args)?;
    let mut untrained = untrained;
    if cfg.recall.known_precision == KnownPrecision::Estimated {
        // The estimate needs measured errors: those of the untrained network.
        untrained.measure_errors(&images)?;
    }
    report("untrained", &untrained, &images, shape, &args)?;
    Ok(())
}

//! `pcmem`: the command line of the project.
//!
//! ```text
//! pcmem data list                 what is known, where it was found, whether it verifies
//! pcmem data fetch cifar10        download the official files into the cache (checksummed)
//! pcmem data verify [NAME]        check cached archives and SHA256SUMS of the data directory
//! pcmem reproduce [--profile quick|full] [--only ID ...] [--out DIR] [--dry-run [--rate GFLOPS]]
//!                                 every grid of experiments/, then aggregate, figures, REPORT.md
//! pcmem run experiments/ID.toml [--profile P] [--shard i/n] [--where KEY=VALUE]... [--dry-run [--rate GFLOPS]] [--force]
//! pcmem aggregate DIR             records -> DIR/table.csv and table.parquet
//! pcmem report DIR                figures and DIR/REPORT.md with the paper's claims
//! pcmem regress DIR --baseline F  fail when retrieval drops below a committed baseline
//! pcmem store DIR --out MODEL     store your own images (PCN), with the training curve
//! pcmem recall MODEL IMG... --corrupt top:0.25|noise:0.2|mask.png --out DIR
//! ```
//! Exit codes: 0 success, 1 failure, 2 bad usage or bad input, 3 finished but some grids were
//! not run because their data cannot be had here (the summary and REPORT.md say which and how
//! to provide it), 4 stopped by a signal (SIGTERM, SIGINT, SIGUSR1: a training cell saves its
//! checkpoint at the end of its epoch first; a second signal, or the first with
//! `--checkpoint-every off`, ends the process at once) — run the same command again to continue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pcmem_data::{DataDirs, DataError, DatasetId, Split};

mod harness;
mod plan;
mod store;

/// Associative memories via predictive coding: reproduction and experiments.
#[derive(Parser, Debug)]
#[command(name = "pcmem", version, about)]
struct Cli {
    /// Data directory with datasets in their official layouts (overrides PCMEM_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Download cache (overrides PCMEM_CACHE_DIR; default ~/.cache/pcmem).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Base URL of a mirror holding the official files (overrides PCMEM_MIRROR).
    #[arg(long, global = true)]
    mirror: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Datasets: list, download, verify.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run every grid of the experiments folder, aggregate, draw the figures, write REPORT.md.
    Reproduce {
        /// Profile of every grid: quick (CPU, minutes) or full (the paper's sizes, for a GPU).
        #[arg(long, default_value = "quick")]
        profile: String,
        /// Only these grid ids (e.g. --only fig3 --only table1).
        #[arg(long)]
        only: Vec<String>,
        /// Output folder for records, tables, figures and the report.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Folder of grid files.
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
        /// Claims of the paper.
        #[arg(long, default_value = "results/paper/claims.toml")]
        claims: PathBuf,
        /// Device: cpu or cuda:N (cuda:N needs a build with the cuda feature; the PCN and the
        /// autoencoder run there, Hopfield networks on the CPU).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// How the PCN computes: fused (default), fused_direct, candle (the reference kernel)
        /// or candle_gram (what fused runs on a GPU). An execution choice: every kernel computes the same
        /// network, and records say which ran.
        #[arg(long, default_value = "fused")]
        kernel: String,
        /// Recompute cells that already have a record.
        #[arg(long)]
        force: bool,
        /// Never download: grids whose data is not on this machine are not run (and listed).
        #[arg(long)]
        offline: bool,
        /// Save a training cell's state at most this often (e.g. 30s, 5m, 1h; `off`: never, and a
        /// signal then ends the run at once), so that a killed or pre-empted run resumes the cell
        /// where it stopped.
        #[arg(long, default_value = "5m")]
        checkpoint_every: String,
        /// Keep each training cell's trained model (its last checkpoint, beside the record)
        /// instead of removing it once the record is written: a later run of a cell that
        /// differs only in recall settings recalls with it and trains nothing.
        #[arg(long)]
        keep_trained: bool,
        /// List what is left of each grid under --out (cells without a record) and its
        /// estimated training time and memory, with a total; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: estimate for a machine that trains at this many GFLOP/s (e.g. a
        /// GPU's rate from docs/speed-gpu.md) instead of the rates the records measured on
        /// this device; the epochs to the stopping target still come from the records (of any
        /// device).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Run one grid (cells already recorded are skipped).
    Run {
        /// The grid file.
        grid: PathBuf,
        /// Profile.
        #[arg(long, default_value = "quick")]
        profile: String,
        /// Only shard i of n (1-based), e.g. 2/4, for job arrays: shards of about equal
        /// estimated work. In a SLURM array job the task's shard is taken from
        /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when this is not given.
        #[arg(long)]
        shard: Option<String>,
        /// Only the cells whose field KEY equals VALUE (repeat for several; all must hold),
        /// e.g. --where model=autoencoder --where hidden=512. Keys: dataset, n_images, model,
        /// hidden, layers, seed, search.
        #[arg(long = "where", value_name = "KEY=VALUE")]
        only: Vec<String>,
        /// List the cells and an estimate of the work; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: estimate for a machine that trains at this many GFLOP/s (e.g. a
        /// GPU's rate from docs/speed-gpu.md) instead of the rate this grid's records measured
        /// on this device; the epochs to the stopping target still come from the records (of
        /// any device).
        #[arg(long)]
        rate: Option<f64>,
        /// Recompute cells that already have a record.
        #[arg(long)]
        force: bool,
        /// Output folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Device: cpu or cuda:N (cuda:N needs a build with the cuda feature; the PCN and the
        /// autoencoder run there, Hopfield networks on the CPU).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// How the PCN computes: fused (default), fused_direct, candle (the reference kernel)
        /// or candle_gram (what fused runs on a GPU). An execution choice: every kernel computes the same
        /// network, and records say which ran.
        #[arg(long, default_value = "fused")]
        kernel: String,
        /// Never download: if the grid's data is not on this machine it is not run (exit 3).
        #[arg(long)]
        offline: bool,
        /// Save a training cell's state at most this often (e.g. 30s, 5m, 1h; `off`: never, and a
        /// signal then ends the run at once), so that a killed or pre-empted run resumes the cell
        /// where it stopped.
        #[arg(long, default_value = "5m")]
        checkpoint_every: String,
        /// Keep each training cell's trained model (its last checkpoint, beside the record)
        /// instead of removing it once the record is written: a later run of a cell that
        /// differs only in recall settings recalls with it and trains nothing.
        #[arg(long)]
        keep_trained: bool,
    },
    /// Merge the records under DIR/runs into DIR/table.csv and DIR/table.parquet.
    Aggregate {
        /// Output folder of earlier runs.
        dir: PathBuf,
        /// Only records of this profile.
        #[arg(long, default_value = "quick")]
        profile: String,
    },
    /// Figures and DIR/REPORT.md from the records under DIR/runs.
    Report {
        /// Output folder of earlier runs.
        dir: PathBuf,
        /// Only records of this profile.
        #[arg(long, default_value = "quick")]
        profile: String,
        /// Folder of grid files.
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
        /// Claims of the paper.
        #[arg(long, default_value = "results/paper/claims.toml")]
        claims: PathBuf,
    },
    /// List the models a grid can name (the registry), with the table that holds each one's
    /// settings in a grid.
    Models,
    /// Store your own images (a folder) in an associative memory, with the training curve.
    Store(StoreArgs),
    /// Recall stored images from corrupted copies of images; writes cue | recall pictures and
    /// prints the nearest stored image.
    Recall(RecallArgs),
    /// Compare retrieval in DIR/table.csv against a baseline table; fail on a drop.
    Regress {
        /// Output folder of the run to check.
        dir: PathBuf,
        /// Baseline table (CSV written by `pcmem aggregate`).
        #[arg(long)]
        baseline: PathBuf,
        /// Largest allowed drop of the retrieved fraction per row.
        #[arg(long, default_value_t = 0.1)]
        tolerance: f64,
    },
}

#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// Folder of images (PNG, JPEG), stored in file-name order.
    dir: PathBuf,
    /// Folder to write the memory into.
    #[arg(long)]
    out: PathBuf,
    /// Model to store them in, any name `pcmem models` lists (pcn, autoencoder,
    /// modern_hopfield, hopfield, dense_am, uhn, drdam; the bipolar ones binarise the images
    /// to +-1).
    #[arg(long, default_value = "pcn")]
    model: String,
    /// Resize every image to WIDTHxHEIGHT (needed when the images differ in size).
    #[arg(long)]
    size: Option<String>,
    /// Width n of the hidden layers (PCN, autoencoder).
    #[arg(long, default_value_t = 512)]
    hidden: usize,
    /// Hidden layers L.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Epoch limit of training.
    #[arg(long, default_value_t = 3000)]
    max_epochs: usize,
    /// Stop training once the mean squared error per pixel of the stored images is below this.
    #[arg(long, default_value_t = 3e-5)]
    target_mse: f64,
}

#[derive(clap::Args, Debug)]
struct RecallArgs {
    /// A memory written by `pcmem store`.
    model: PathBuf,
    /// Images to recall from (resized to the memory's size when they differ).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How the cue is made: top:0.25 (top quarter known), noise:0.2 (Gaussian noise of that
    /// variance), random:0.5, centre:0.5, right:0.5, or a mask PNG (white = known).
    #[arg(long)]
    corrupt: String,
    /// Folder for the cue | recall pictures.
    #[arg(long, default_value = "recalled")]
    out: PathBuf,
    /// Seed of the noise and random masks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Every known dataset, where it was found, and whether its files verify.
    List,
    /// Download a dataset's official files into the cache and verify them.
    Fetch {
        /// mnist, cifar10, tiny-imagenet (imagenet has no free download).
        name: String,
    },
    /// Check cached archives against their published checksums and the data directory
    /// against its SHA256SUMS file.
    Verify {
        /// Only this dataset.
        name: Option<String>,
    },
}

/// An error caused by the user's input (exit code 2).
#[derive(Debug)]
struct BadInput(String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

fn dataset(name: &str) -> anyhow::Result<DatasetId> {
    DatasetId::from_name(name).map_err(|e| BadInput(e.to_string()).into())
}

fn dirs(cli: &Cli) -> DataDirs {
    let mut d = DataDirs::from_env(cli.data_dir.clone());
    if let Some(c) = &cli.cache_dir {
        d.cache_dir = c.clone();
    }
    if let Some(m) = &cli.mirror {
        d.mirror = Some(m.clone());
    }
    d
}

fn describe(l: &pcmem_data::Located) -> String {
    use pcmem_data::Located::*;
    match l {
        Idx(img, _) => img.display().to_string(),
        Records(files) => files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        TinyFolder(p) | TinyZip(p) | Photos(p) => p.display().to_string(),
    }
}

/// Reads `--kernel`; an unknown name is bad input (exit 2) naming the kernels.
fn parse_kernel(name: &str) -> anyhow::Result<pcmem_model::Kernel> {
    serde_json::from_value(serde_json::Value::String(name.into())).map_err(|_| {
        BadInput(format!(
            "--kernel {name}: unknown kernel; use fused, fused_direct, candle or candle_gram"
        ))
        .into()
    })
}

/// Opens `--device`; a name that cannot be used is bad input (exit 2) with the reason.
fn open_device(device: &str) -> anyhow::Result<pcmem_harness::candle_core::Device> {
    pcmem_harness::device::parse(device).map_err(|e| BadInput(e.to_string()).into())
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let dirs = dirs(cli);
    match &cli.command {
        Command::Reproduce {
            profile,
            only,
            out,
            experiments,
            claims,
            device,
            kernel,
            force,
            offline,
            checkpoint_every,
            keep_trained,
            dry_run,
            rate,
        } => {
            let dry_run = harness::parse_rate(*dry_run, *rate)?;
            let device = open_device(device)?;
            harness::reproduce(&harness::Reproduce {
                dry_run,
                keep_trained: *keep_trained,
                kernel: parse_kernel(kernel)?,
                offline: *offline,
                checkpoint_every: harness::parse_every(checkpoint_every)?,
                profile: profile.clone(),
                only: only.clone(),
                out: out.clone(),
                experiments: experiments.clone(),
                claims: claims.clone(),
                force: *force,
                data: dirs,
                device,
            })
        }
        Command::Run {
            grid,
            profile,
            shard,
            only,
            dry_run,
            rate,
            force,
            out,
            device,
            kernel,
            offline,
            checkpoint_every,
            keep_trained,
        } => {
            let dry_run = harness::parse_rate(*dry_run, *rate)?;
            let device = open_device(device)?;
            let kernel = parse_kernel(kernel)?;
            let shard = match shard.as_deref() {
                Some(s) => Some(harness::parse_shard(s)?),
                // In a SLURM job array, the task's shard.
                None => {
                    let s = pcmem_harness::shard::from_slurm(|k| std::env::var(k).ok())
                        .map_err(BadInput)?;
                    if let Some((i, n)) = s {
                        eprintln!("shard {i}/{n} from SLURM_ARRAY_TASK_ID");
                    }
                    s
                }
            };
            let every = harness::parse_every(checkpoint_every)?;
            let mut opts = harness::options(out, shard, *force, dirs, device, every);
            opts.keep_trained = harness::keep_trained(*keep_trained, every)?;
            opts.offline = *offline;
            opts.only = only
                .iter()
                .map(|o| harness::parse_only(o))
                .collect::<anyhow::Result<_>>()?;
            opts.kernel = kernel;
            harness::run_one(grid, profile, dry_run, opts)
        }
        Command::Aggregate { dir, profile } => harness::aggregate(dir, profile).map(|_| ()),
        Command::Report {
            dir,
            profile,
            experiments,
            claims,
        } => harness::report(dir, profile, experiments, claims),
        Command::Regress {
            dir,
            baseline,
            tolerance,
        } => harness::regress(dir, baseline, *tolerance),
        Command::Models => {
            for f in pcmem_harness::registry::MODELS {
                println!(
                    "{:<16} {}{}",
                    f.name(),
                    f.about(),
                    if f.bipolar() {
                        "; stores +-1 images"
                    } else {
                        ""
                    },
                );
            }
            println!(
                "\nA grid names models in [train] model = [...] and gives each one's settings in \
                 a table of its name, e.g. [uhn]."
            );
            Ok(())
        }
        Command::Store(a) => store::store(&store::Store {
            dir: a.dir.clone(),
            out: a.out.clone(),
            model: a.model.clone(),
            size: a.size.as_deref().map(store::parse_size).transpose()?,
            hidden: a.hidden,
            layers: a.layers,
            max_epochs: a.max_epochs,
            target_mse: a.target_mse,
        }),
        Command::Recall(a) => store::recall(&a.model, &a.images, &a.corrupt, &a.out, a.seed),
        Command::Data(DataCommand::List) => {
            println!(
                "data dir: {}\ncache dir: {}",
                dirs.data_dir
                    .as_ref()
                    .map_or("<not set>".into(), |p| p.display().to_string()),
                dirs.cache_dir.display()
            );
            println!(
                "{:<14} {:<12} {:<10} location",
                "dataset", "shape", "verified"
            );
            for id in DatasetId::ALL {
                let (c, h, w) = id.shape();
                let shape = format!("{c}x{h}x{w}");
                let location = [Split::Train, Split::Test]
                    .into_iter()
                    .filter_map(|split| {
                        pcmem_data::locate(id, split, &dirs)
                            .ok()
                            .map(|l| format!("{split:?}: {}", describe(&l)))
                    })
                    .collect::<Vec<_>>();
                let location = if location.is_empty() {
                    "not present".to_string()
                } else {
                    location.join("; ")
                };
                let checks = pcmem_data::verify(Some(id), &dirs)?;
                let verified = if checks.is_empty() {
                    "-".to_string()
                } else {
                    let bad = checks.iter().filter(|c| c.problem.is_some()).count();
                    if bad == 0 {
                        format!("{} ok", checks.len())
                    } else {
                        format!("{bad} BAD")
                    }
                };
                println!(
                    "{:<14} {:<12} {:<10} {location}",
                    id.name(),
                    shape,
                    verified
                );
            }
            Ok(())
        }
        Command::Data(DataCommand::Fetch { name }) => {
            let id = dataset(name)?;
            let files = pcmem_data::fetch(id, &dirs, true)
                .with_context(|| format!("fetching {}", id.name()))?;
            for f in files {
                println!("verified {}", f.display());
            }
            Ok(())
        }
        Command::Data(DataCommand::Verify { name }) => {
            let id = name.as_deref().map(dataset).transpose()?;
            let checks = pcmem_data::verify(id, &dirs)?;
            if checks.is_empty() {
                return Err(BadInput(
                    "nothing to verify: no cached archives and no SHA256SUMS in the data directory"
                        .into(),
                )
                .into());
            }
            let bad: Vec<_> = checks.iter().filter(|c| c.problem.is_some()).collect();
            for c in &bad {
                println!(
                    "BAD {}: {}",
                    c.path.display(),
                    c.problem.as_deref().unwrap_or("")
                );
            }
            println!("{} files checked, {} bad", checks.len(), bad.len());
            if bad.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("{} files failed verification", bad.len())
            }
        }
    }
}

/// Raised by SIGTERM, SIGINT or SIGUSR1 (a scheduler's warning before its time limit, or
/// Ctrl-C): grid runs then checkpoint and stop. A second such signal ends the process at once.
pub(crate) fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    static FLAG: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
        std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT, SIGUSR1] {
            // Order matters: the conditional exit sees the flag before this signal raises it.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
    .clone()
}

/// Without checkpoints there is nothing to save: SIGTERM, SIGINT and SIGUSR1 end the process
/// at once with exit 4 (run the same command again: finished cells are kept).
pub(crate) fn stop_at_once() {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let raised = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    for sig in [SIGTERM, SIGINT, SIGUSR1] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 4, raised.clone());
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<harness::NotRun>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(3)
        }
        Err(e)
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<pcmem_harness::HarnessError>(),
                    Some(pcmem_harness::HarnessError::Interrupted { .. })
                )
            }) =>
        {
            eprintln!("{e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(4)
        }
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            // Library errors say themselves whether the input is at fault; look through the
            // whole chain (context layers and transparent wrappers included).
            let bad_input = e.downcast_ref::<BadInput>().is_some()
                || e.chain().any(|c| {
                    c.downcast_ref::<pcmem_harness::HarnessError>()
                        .is_some_and(|h| h.is_bad_input())
                        || c.downcast_ref::<DataError>()
                            .is_some_and(|d| d.is_bad_input())
                });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

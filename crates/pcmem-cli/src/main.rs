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

use std::process::ExitCode;

use clap::Parser;
use pcmem_data::{DataDirs, DataError};

use args::{Cli, Command, DataCommand, Execution};

mod args;
mod data;
mod harness;
mod plan;
mod signals;
mod store;

/// An error caused by the user's input (exit code 2).
#[derive(Debug)]
struct BadInput(String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

/// Where data is looked for: the environment's directories, overridden by `--data-dir`,
/// `--cache-dir` and `--mirror`.
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

/// The execution options of `reproduce` and `run`, read and checked.
struct Exec {
    device: pcmem_harness::candle_core::Device,
    kernel: pcmem_model::Kernel,
    checkpoint_every: Option<std::time::Duration>,
    keep_trained: bool,
}

/// Reads `--device`, `--kernel`, `--checkpoint-every` and `--keep-trained` (in that order;
/// the first bad one is bad input, exit 2).
fn execution(e: &Execution) -> anyhow::Result<Exec> {
    let device = open_device(&e.device)?;
    let kernel = parse_kernel(&e.kernel)?;
    let checkpoint_every = harness::parse_every(&e.checkpoint_every)?;
    let keep_trained = harness::keep_trained(e.keep_trained, checkpoint_every)?;
    Ok(Exec {
        device,
        kernel,
        checkpoint_every,
        keep_trained,
    })
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
            force,
            offline,
            execution: e,
            dry_run,
            rate,
        } => {
            let dry_run = harness::parse_rate(*dry_run, *rate)?;
            let e = execution(e)?;
            harness::reproduce(&harness::Reproduce {
                dry_run,
                keep_trained: e.keep_trained,
                kernel: e.kernel,
                offline: *offline,
                checkpoint_every: e.checkpoint_every,
                profile: profile.clone(),
                only: only.clone(),
                out: out.clone(),
                experiments: experiments.clone(),
                claims: claims.clone(),
                force: *force,
                data: dirs,
                device: e.device,
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
            offline,
            execution: e,
        } => {
            let dry_run = harness::parse_rate(*dry_run, *rate)?;
            let e = execution(e)?;
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
            let mut opts = harness::options(out, shard, *force, dirs, e.device, e.checkpoint_every);
            opts.keep_trained = e.keep_trained;
            opts.offline = *offline;
            opts.only = only
                .iter()
                .map(|o| harness::parse_only(o))
                .collect::<anyhow::Result<_>>()?;
            opts.kernel = e.kernel;
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
        Command::Data(DataCommand::List) => data::list(&dirs),
        Command::Data(DataCommand::Fetch { name }) => data::fetch(name, &dirs),
        Command::Data(DataCommand::Verify { name }) => data::verify(name.as_deref(), &dirs),
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

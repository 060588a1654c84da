//! `pcmem`: the command line of the project.
//!
//! ```text
//! pcmem data list                 what is known, where it was found, whether it verifies
//! pcmem data fetch cifar10        download the official files into the cache (checksummed)
//! pcmem data verify [NAME]        check cached archives and SHA256SUMS of the data directory
//! ```
//! Exit codes: 0 success, 1 failure, 2 bad usage or bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pcmem_data::{DataDirs, DataError, DatasetId, Split};

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

fn run(cli: &Cli) -> anyhow::Result<()> {
    let dirs = dirs(cli);
    match &cli.command {
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
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let bad_input = e.downcast_ref::<BadInput>().is_some()
                || e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<DataError>(),
                        Some(
                            DataError::UnknownDataset { .. }
                                | DataError::Invalid(_)
                                | DataError::Missing { .. }
                        )
                    )
                });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

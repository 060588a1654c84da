//! The command line's arguments (clap): the subcommands, their options and their help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Associative memories via predictive coding: reproduction and experiments.
#[derive(Parser, Debug)]
#[command(name = "pcmem", version, about)]
pub(crate) struct Cli {
    /// Data directory with datasets in their official layouts (overrides PCMEM_DATA_DIR).
    #[arg(long, global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Download cache (overrides PCMEM_CACHE_DIR; default ~/.cache/pcmem).
    #[arg(long, global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Base URL of a mirror holding the official files (overrides PCMEM_MIRROR).
    #[arg(long, global = true)]
    pub(crate) mirror: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
        /// Recompute cells that already have a record.
        #[arg(long)]
        force: bool,
        /// Never download: grids whose data is not on this machine are not run (and listed).
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        execution: Execution,
        /// List what is left of each grid under --out (cells without a record) and its
        /// estimated training time (a half-trained cell: the epochs after its checkpoint) and
        /// memory, with a total; run nothing.
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
        /// List the cells and an estimate of the work (a half-trained cell: the epochs after
        /// its checkpoint); run nothing.
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
        /// Never download: if the grid's data is not on this machine it is not run (exit 3).
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        execution: Execution,
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
pub(crate) struct StoreArgs {
    /// Folder of images (PNG, JPEG), stored in file-name order.
    pub(crate) dir: PathBuf,
    /// Folder to write the memory into.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Model to store them in, any name `pcmem models` lists (pcn, autoencoder,
    /// modern_hopfield, hopfield, dense_am, uhn, drdam; the bipolar ones binarise the images
    /// to +-1).
    #[arg(long, default_value = "pcn")]
    pub(crate) model: String,
    /// Resize every image to WIDTHxHEIGHT (needed when the images differ in size).
    #[arg(long)]
    pub(crate) size: Option<String>,
    /// Width n of the hidden layers (PCN, autoencoder).
    #[arg(long, default_value_t = 512)]
    pub(crate) hidden: usize,
    /// Hidden layers L.
    #[arg(long, default_value_t = 2)]
    pub(crate) layers: usize,
    /// Epoch limit of training.
    #[arg(long, default_value_t = 3000)]
    pub(crate) max_epochs: usize,
    /// Stop training once the mean squared error per pixel of the stored images is below this.
    #[arg(long, default_value_t = 3e-5)]
    pub(crate) target_mse: f64,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RecallArgs {
    /// A memory written by `pcmem store`.
    pub(crate) model: PathBuf,
    /// Images to recall from (resized to the memory's size when they differ).
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
    /// How the cue is made: top:0.25 (top quarter known), noise:0.2 (Gaussian noise of that
    /// variance), random:0.5, centre:0.5, right:0.5, or a mask PNG (white = known).
    #[arg(long)]
    pub(crate) corrupt: String,
    /// Folder for the cue | recall pictures.
    #[arg(long, default_value = "recalled")]
    pub(crate) out: PathBuf,
    /// Seed of the noise and random masks.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DataCommand {
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

/// How `reproduce` and `run` compute cells and save their state.
#[derive(clap::Args, Debug)]
pub(crate) struct Execution {
    /// Device: cpu or cuda:N (cuda:N needs a build with the cuda feature; the PCN and the
    /// autoencoder run there, Hopfield networks on the CPU).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// How the PCN computes: fused (default), fused_direct, candle (the reference kernel)
    /// or candle_gram (what fused runs on a GPU). An execution choice: every kernel computes the same
    /// network, and records say which ran.
    #[arg(long, default_value = "fused")]
    pub(crate) kernel: String,
    /// Save a training cell's state at most this often (e.g. 30s, 5m, 1h; `off`: never, and a
    /// signal then ends the run at once), so that a killed or pre-empted run resumes the cell
    /// where it stopped.
    #[arg(long, default_value = "5m")]
    pub(crate) checkpoint_every: String,
    /// Keep each training cell's trained model (its last checkpoint, beside the record)
    /// instead of removing it once the record is written: a later run of a cell that
    /// differs only in recall settings recalls with it and trains nothing.
    #[arg(long)]
    pub(crate) keep_trained: bool,
}

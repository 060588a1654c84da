//! A grid's data, made available before its first cell: found in the data directory or the
//! cache, or downloaded (checksummed, atomic, with a progress bar and the size announced
//! first) when the dataset has an official download and the network is allowed. A grid whose
//! data cannot be had (ImageNet, which has no free download; `--offline`; a download that
//! failed) is *not run*: [`prepare`] returns the reason, with how to provide the data, and the
//! runner records it beside the grid's records (`not-run.txt`) for the summary and the report.
//!
//! ```
//! let text = "id = \"g\"\ntitle = \"t\"\npaper = \"p\"\n[train]\ndataset = [\"cifar10\"]\n\
//!             n_images = [4, 8]\nmodel = [\"pcn\"]\n[recall]\ncorruption = [\"noise:0.2\"]\n\
//!             threshold = 0.005\n[profile.quick]\n";
//! let grid = pcmem_harness::spec::Grid::parse(text, "g.toml", "quick")?;
//! assert_eq!(pcmem_harness::provision::split_of(&grid), pcmem_data::Split::Train);
//! // Where `pcmem run` notes a grid it could not run for want of data.
//! let marker = pcmem_harness::provision::marker("out".as_ref(), &grid);
//! assert!(marker.starts_with("out"));
//! # Ok::<(), pcmem_harness::HarnessError>(())
//! ```

use std::path::{Path, PathBuf};

use pcmem_data::{DataError, DatasetId, Split};

use crate::error::{HarnessError, Result};
use crate::run::RunOptions;
use crate::spec::Grid;

/// Name of the marker a grid that was not run leaves in `<out>/runs/<grid>/<profile>/`.
pub const NOT_RUN: &str = "not-run.txt";

/// The split a grid stores its images from.
pub fn split_of(grid: &Grid) -> Split {
    if grid.train.split == "test" {
        Split::Test
    } else {
        Split::Train
    }
}

/// Makes every dataset of `grid` available. `Ok(None)`: all there; `Ok(Some(reason))`: the
/// grid cannot run, and why; `Err`: bad input (a data directory given that does not exist).
pub fn prepare(grid: &Grid, opts: &RunOptions) -> Result<Option<String>> {
    if let Some(d) = &opts.data.data_dir {
        if !d.is_dir() {
            return Err(HarnessError::Data(DataError::Invalid(format!(
                "data directory {} does not exist; fix --data-dir or PCMEM_DATA_DIR",
                d.display()
            ))));
        }
    }
    let split = split_of(grid);
    for name in &grid.train.dataset {
        let id = DatasetId::from_name(name)?;
        let missing = match pcmem_data::locate(id, split, &opts.data) {
            Ok(_) => continue,
            Err(e) => e.to_string(),
        };
        let archives = id.archives_for(split);
        if archives.is_empty() {
            return Ok(Some(format!(
                "{name} has no free download: put your own photos (`<wnid>_<name>.JPEG`) in \
                 <data-dir>/imagenet/ and pass --data-dir ({missing})"
            )));
        }
        if opts.offline {
            return Ok(Some(format!(
                "{name} ({split:?}) is not on this machine and --offline forbids the download: \
                 run `pcmem data fetch {name}` where there is internet, or pass --data-dir \
                 ({missing})"
            )));
        }
        let bytes: u64 = archives.iter().map(|a| a.bytes).sum();
        eprintln!(
            "{}: downloading {name} ({split:?}): {} file(s), {:.1} MB, into {}",
            grid.id,
            archives.len(),
            bytes as f64 / 1e6,
            opts.data.cache_dir.display()
        );
        if let Err(e) = pcmem_data::fetch_split(id, split, &opts.data, opts.progress) {
            return Ok(Some(format!(
                "{name} ({split:?}) could not be downloaded: {e}; run `pcmem data fetch {name}` \
                 again or pass --data-dir"
            )));
        }
        if let Err(e) = pcmem_data::locate(id, split, &opts.data) {
            return Ok(Some(format!("{name} downloaded but not usable: {e}")));
        }
    }
    Ok(None)
}

/// Where the not-run marker of a grid lives.
pub fn marker(out: &Path, grid: &Grid) -> PathBuf {
    out.join("runs")
        .join(&grid.id)
        .join(&grid.applied_profile)
        .join(NOT_RUN)
}

/// The grids of `profile` under `out` that were not run, with the reason each gives.
pub fn not_run(out: &Path, profile: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let Ok(grids) = std::fs::read_dir(out.join("runs")) else {
        return v;
    };
    for g in grids.flatten() {
        let p = g.path().join(profile).join(NOT_RUN);
        if let Ok(reason) = std::fs::read_to_string(&p) {
            v.push((g.file_name().to_string_lossy().into_owned(), reason));
        }
    }
    v.sort();
    v
}

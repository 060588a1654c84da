//! `pcmem data`: list the known datasets, fetch their official files, verify what is cached.

use anyhow::Context;
use pcmem_data::{DataDirs, DatasetId, Split};

use crate::BadInput;

/// Reads a dataset's name; an unknown one is bad input (exit 2) naming the known ones.
pub(crate) fn dataset(name: &str) -> anyhow::Result<DatasetId> {
    DatasetId::from_name(name).map_err(|e| BadInput(e.to_string()).into())
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

/// `pcmem data list`: every known dataset, its shape, where it was found and whether it verifies.
pub(crate) fn list(dirs: &DataDirs) -> anyhow::Result<()> {
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
                pcmem_data::locate(id, split, dirs)
                    .ok()
                    .map(|l| format!("{split:?}: {}", describe(&l)))
            })
            .collect::<Vec<_>>();
        let location = if location.is_empty() {
            "not present".to_string()
        } else {
            location.join("; ")
        };
        let checks = pcmem_data::verify(Some(id), dirs)?;
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

/// `pcmem data fetch NAME`: downloads the official files into the cache and verifies them.
pub(crate) fn fetch(name: &str, dirs: &DataDirs) -> anyhow::Result<()> {
    let id = dataset(name)?;
    let files =
        pcmem_data::fetch(id, dirs, true).with_context(|| format!("fetching {}", id.name()))?;
    for f in files {
        println!("verified {}", f.display());
    }
    Ok(())
}

/// `pcmem data verify [NAME]`: checks cached archives and the data directory's SHA256SUMS.
pub(crate) fn verify(name: Option<&str>, dirs: &DataDirs) -> anyhow::Result<()> {
    let id = name.map(dataset).transpose()?;
    let checks = pcmem_data::verify(id, dirs)?;
    if checks.is_empty() {
        return Err(BadInput(
            "nothing to verify: no cached archives and no SHA256SUMS in the data directory".into(),
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

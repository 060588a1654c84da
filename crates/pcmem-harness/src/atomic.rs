//! Every artefact the harness writes (records, pictures, figures, tables, the report) goes
//! through [`write_atomic`]: the bytes are written to a temporary file beside the target,
//! flushed to disk and checked, then renamed over the target. A failed write (a full disk, a
//! file-size limit, a read-only folder) is an error naming the file, and leaves neither a
//! partial target nor the temporary file behind.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("a/b/table.csv");
//! pcmem_harness::atomic::write_atomic(&path, b"x,y\n1,2\n")?;
//! assert_eq!(std::fs::read(&path)?, b"x,y\n1,2\n");
//! assert_eq!(std::fs::read_dir(path.parent().unwrap())?.count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{io_err, Result};

/// Marks the temporary files of [`write_atomic`]: `<name>.tmp-<pid>-<counter>`.
pub const TMP_MARK: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling a write to `path` goes through.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "artefact".into(), |n| n.to_string_lossy().into_owned());
    let k = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{name}{TMP_MARK}{}-{k}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (see the module docs), creating its folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = temporary(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        let len = f.metadata()?.len();
        if len != bytes.len() as u64 {
            return Err(std::io::Error::other(format!(
                "wrote {len} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// Checks before any work that files can be created in `dir` (creating it if needed): a
/// path that is a file, a read-only folder or a full disk is found now, not after training.
pub fn check_writable(dir: &Path) -> Result<()> {
    if let Some(file) = dir.ancestors().find(|a| a.exists() && !a.is_dir()) {
        return Err(crate::HarnessError::Output {
            path: file.to_path_buf(),
            reason: "exists and is not a folder; give a folder for --out".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| crate::HarnessError::Output {
        path: dir.to_path_buf(),
        reason: format!("cannot create it: {e}"),
    })?;
    let probe = dir.join(format!(".pcmem-write-probe-{}", std::process::id()));
    write_atomic(&probe, b"probe").map_err(|e| crate::HarnessError::Output {
        path: dir.to_path_buf(),
        reason: format!("cannot write into it: {e}"),
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

//! One process per cell: an advisory lock beside the cell's record.

use std::path::PathBuf;

use crate::error::Result;

/// An exclusive hold on one cell while a process computes it: an advisory lock on
/// `<record>.lock`, released by the operating system when the process ends (even by kill -9),
/// so a second `pcmem run` into the same folder skips the cell instead of training it twice.
pub(super) struct CellLock {
    file: std::fs::File,
    path: PathBuf,
}

impl CellLock {
    /// `Ok(None)` when another process holds the cell. The holder writes `pid=<pid>
    /// host=<host>` into the lock file.
    pub(super) fn try_take(record: &std::path::Path) -> Result<Option<Self>> {
        let path = record.with_extension("json.lock");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(crate::error::io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for people and schedulers looking at the folder.
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_default();
                let mut f = &file;
                let _ = f.set_len(0);
                let _ = std::io::Write::write_all(
                    &mut f,
                    format!("pid={} host={host}\n", std::process::id()).as_bytes(),
                );
                Ok(Some(CellLock { file, path }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(crate::error::io_err(&path)(e)),
        }
    }
}

impl Drop for CellLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock; a process that opened it meanwhile
        // takes the lock on the unlinked file and then finds the record written.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

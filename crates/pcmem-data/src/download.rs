//! Checksummed downloads: stream to a temporary file beside the destination, hash while
//! writing, check size and checksums, and only then rename into place. A killed or corrupted
//! transfer never leaves a file that looks valid; a wrong file is deleted, never kept.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("a.bin");
//! std::fs::write(&file, b"abc")?;
//! let d = pcmem_data::download::digest_file(&file)?;
//! assert_eq!(d.bytes, 3);
//! assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Read, Write};
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{io_err, DataError, Result};
use crate::image_set::hex;

/// What a file must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Size in bytes, when published.
    pub bytes: Option<u64>,
    /// Hex MD5, when published.
    pub md5: Option<String>,
    /// Hex SHA-256, when published.
    pub sha256: Option<String>,
}

/// Hashes of a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Size in bytes.
    pub bytes: u64,
    /// Hex MD5.
    pub md5: String,
    /// Hex SHA-256.
    pub sha256: String,
}

/// Streams `reader` through both hashes, copying into `out` when given.
fn digest_stream(
    mut reader: impl Read,
    mut out: Option<&mut dyn Write>,
    mut on_bytes: impl FnMut(u64),
    path: &Path,
) -> Result<Digests> {
    let (mut md5, mut sha) = (Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        if let Some(o) = out.as_mut() {
            o.write_all(&buf[..n]).map_err(io_err(path))?;
        }
        total += n as u64;
        on_bytes(n as u64);
    }
    Ok(Digests {
        bytes: total,
        md5: hex(&md5.finalize()),
        sha256: hex(&sha.finalize()),
    })
}

/// Size, MD5 and SHA-256 of a file on disk.
pub fn digest_file(path: &Path) -> Result<Digests> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    digest_stream(std::io::BufReader::new(f), None, |_| {}, path)
}

/// Checks digests against what is expected; the error names the first mismatch.
pub fn check(path: &Path, got: &Digests, want: &Expected) -> Result<()> {
    let mismatch = |algorithm, expected: &str, actual: &str| DataError::Checksum {
        path: path.to_path_buf(),
        algorithm,
        expected: expected.to_string(),
        actual: actual.to_string(),
    };
    if let Some(b) = want.bytes {
        if b != got.bytes {
            return Err(mismatch("size", &b.to_string(), &got.bytes.to_string()));
        }
    }
    if let Some(m) = &want.md5 {
        if !m.eq_ignore_ascii_case(&got.md5) {
            return Err(mismatch("md5", m, &got.md5));
        }
    }
    if let Some(s) = &want.sha256 {
        if !s.eq_ignore_ascii_case(&got.sha256) {
            return Err(mismatch("sha256", s, &got.sha256));
        }
    }
    Ok(())
}

/// Downloads `url` to `dest` unless a verified copy is already there. Shows a progress bar on
/// stderr when `progress` is set. Returns the digests of the file in place.
pub fn fetch(url: &str, dest: &Path, want: &Expected, progress: bool) -> Result<Digests> {
    if dest.exists() {
        let got = digest_file(dest)?;
        if check(dest, &got, want).is_ok() {
            return Ok(got);
        }
        std::fs::remove_file(dest).map_err(io_err(dest))?;
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let fail = |reason: String| DataError::Download {
        url: url.to_string(),
        dest: dest.to_path_buf(),
        reason,
    };
    let resp = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let announced: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
    let tmp = dir.join(format!(
        ".{}.part-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(announced.or(want.bytes).unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        Some(bar)
    } else {
        None
    };
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let got = digest_stream(
            resp.into_reader(),
            Some(&mut file),
            |n| {
                if let Some(b) = &bar {
                    b.inc(n)
                }
            },
            &tmp,
        )
        .map_err(|e| match e {
            DataError::Io { source, .. } => fail(format!("transfer interrupted: {source}")),
            other => other,
        })?;
        file.sync_all().map_err(io_err(&tmp))?;
        if let Some(a) = announced {
            if a != got.bytes {
                return Err(fail(format!(
                    "server announced {a} bytes but sent {}",
                    got.bytes
                )));
            }
        }
        check(dest, &got, want)?;
        Ok(got)
    })();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(got) => {
            std::fs::rename(&tmp, dest).map_err(io_err(dest))?;
            Ok(got)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

//! A newcomer's first run: `pcmem reproduce` fetches the data a grid needs from the
//! (loopback) mirror into an empty cache and runs it; a grid whose data cannot be had is
//! "not run" with the reason, in the summary, in REPORT.md and in the exit status (3).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

mod common;

/// The binary, run from the repository's root (the grids under `experiments/`).
fn pcmem() -> Command {
    let mut c = common::pcmem();
    c.current_dir(root());
    c
}

/// Serves the files of `dir` by name on 127.0.0.1 until the process ends; returns the base
/// URL and a log of the paths requested.
fn mirror(dir: PathBuf) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut line = String::new();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let name = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/');
            seen.lock().unwrap().push(name.to_string());
            match std::fs::read(dir.join(name)) {
                Ok(body) => {
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(&body);
                }
                Err(_) => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    (format!("http://{addr}"), log)
}

/// The official MNIST test files, from the real data folder (their checksums are the
/// published ones, which a generated file cannot match).
fn official_mnist() -> Option<PathBuf> {
    let d = pcmem_data::data_dir_env_from(&root())?.join("mnist");
    d.join("t10k-images-idx3-ubyte.gz").exists().then_some(d)
}

#[test]
fn reproduce_downloads_what_it_needs_and_reports_what_it_cannot_run() {
    let Some(mnist) = official_mnist() else {
        eprintln!(
            "PCMEM_DATA_DIR with mnist/t10k-*.gz not set: the official files to serve on \
             127.0.0.1 are missing, so this test cannot run (CI sets it)"
        );
        return;
    };
    let (url, requested) = mirror(mnist);
    let tmp = tempfile::tempdir().unwrap();
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    let o = pcmem()
        .args([
            "reproduce",
            "--profile",
            "quick",
            "--only",
            "fig9a",
            "--only",
            "fig10b",
        ])
        .args(["--mirror", &url])
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    // MNIST's test files came from the mirror, announced with their size; nothing else.
    let mut got = requested.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
        "{err}"
    );
    assert!(
        err.contains("downloading mnist") && err.contains("MB"),
        "{err}"
    );
    assert!(cache.join("mnist/t10k-images-idx3-ubyte.gz").exists());
    // fig9a ran; fig10b (ImageNet) did not, and says how to provide its data.
    let recs = pcmem_harness::record::read_all(&out).unwrap();
    assert!(!recs.is_empty() && recs.iter().all(|(_, r)| r.grid == "fig9a"));
    assert!(
        err.contains("not run: fig10b") && err.contains("no free download"),
        "{err}"
    );
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        report.contains("Grids not run") && report.contains("| fig10b |"),
        "{report}"
    );
}

#[test]
fn offline_runs_nothing_it_would_have_to_download_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("data");
    std::fs::create_dir_all(&empty).unwrap();
    let o = pcmem()
        .args([
            "reproduce",
            "--profile",
            "quick",
            "--only",
            "fig9a",
            "--offline",
        ])
        .arg("--data-dir")
        .arg(&empty)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not run: fig9a") && err.contains("--offline") && err.contains("mnist"),
        "{err}"
    );
    assert!(!tmp.path().join("cache").exists(), "nothing downloaded");
    // One grid with `run`: the same, exit 3.
    let o = pcmem()
        .args(["run", "experiments/fig10b.toml", "--offline"])
        .arg("--data-dir")
        .arg(&empty)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("imagenet") && err.contains("no free download"),
        "{err}"
    );
}

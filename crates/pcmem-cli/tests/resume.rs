//! A training cell killed with SIGKILL mid-training resumes from its checkpoint and ends with
//! the record of a run never interrupted (same training curve to the bit, same recall); a
//! checkpoint made under other settings is refused by name and the cell restarts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{dry_run_line, mnist_fixture, run_grid};

/// A PCN cell that trains for 1500 epochs (no early stop; about 1.5e11 flops, seconds on
/// any machine), checkpointing after every epoch when asked: the kill comes after 5 epochs,
/// hundreds of epochs before the end whatever the machine's speed.
fn grid(alpha: &str) -> String {
    format!(
        r#"
id = "resume"
title = "resumable PCN cell"
paper = "none"
[train]
dataset = ["mnist"]
split = "test"
n_images = [8]
model = ["pcn"]
hidden = [128]
[recall]
corruption = ["noise:0.05", "top:0.5"]
threshold = 0.005
[pcn]
learning = {{ alpha = {alpha}, optimizer = {{ kind = "adam", beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }}, gradient_scale = "mean", max_epochs = 1500, patience = 100000 }}
inference = {{ gamma = 0.05, steps = 40 }}
recall = {{ steps = 40, iterations = 2 }}
[profile.quick]
"#
    )
}

fn run(grid: &Path, data: &Path, out: &Path, every: &str) -> Command {
    let mut c = run_grid(grid, data, out);
    c.args(["--checkpoint-every", every]);
    c
}

fn only_record(out: &Path) -> PathBuf {
    let dir = out.join("runs/resume/quick");
    let recs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(recs.len(), 1, "{recs:?}");
    recs[0].clone()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Starts the run, waits until its checkpoint holds at least 5 epochs, then SIGKILLs it.
fn start_and_kill(grid: &Path, data: &Path, out: &Path) -> PathBuf {
    let mut child = run(grid, data, out, "0s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = out.join("runs/resume/quick");
    let t = Instant::now();
    let ckpt = loop {
        let found = std::fs::read_dir(&dir).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(".ckpt.json"))
        });
        if let Some(p) = found {
            let epochs = std::fs::read_to_string(&p)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["epochs"].as_array().map(|a| a.len()));
            if epochs.is_some_and(|e| e >= 5) {
                break p;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed mid-training");
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let records: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().into_string().unwrap();
            n.ends_with(".json") && !n.contains(".ckpt")
        })
        .collect();
    assert!(records.is_empty(), "killed mid-training: no record yet");
    ckpt
}

/// Data, the grid file and the record of an uninterrupted run without checkpoints.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_fixture(&data);
    let g = tmp.path().join("g.toml");
    std::fs::write(&g, grid("5e-3")).unwrap();
    let whole = tmp.path().join("whole");
    let o = run(&g, &data, &whole, "off").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (tmp, data, g, json(&only_record(&whole)))
}

#[test]
fn a_cell_killed_mid_training_resumes_to_the_bits_of_an_uninterrupted_run() {
    let (tmp, data, g, want) = setup();
    assert_eq!(want["fit"]["curve"].as_array().unwrap().len(), 1500);
    assert!(want["fit"].get("resumed_at_epoch").is_none());

    // Killed with SIGKILL after at least 5 epochs, then run again.
    let out = tmp.path().join("killed");
    let ckpt = start_and_kill(&g, &data, &out);
    // `--dry-run` prices only the epochs after the checkpoint, and says so.
    let saved = json(&ckpt)["epochs"].as_array().unwrap().len();
    let (line, plan) = dry_run_line(run(&g, &data, &out, "5m"), "-pcn-");
    assert!(
        line.contains(" resumes ")
            && line.ends_with(&format!("from its checkpoint: {saved} of 1500 epochs done")),
        "{plan}"
    );
    let o = run(&g, &data, &out, "5m").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("resumed from its checkpoint after epoch"),
        "{err}"
    );
    let got = json(&only_record(&out));
    let at = got["fit"]["resumed_at_epoch"]
        .as_u64()
        .expect("resumed_at_epoch");
    assert!((5..1500).contains(&(at as usize)), "resumed at {at}");
    assert_eq!(got["fit"]["curve"], want["fit"]["curve"], "training curve");
    assert_eq!(got["fit"]["resolved"], want["fit"]["resolved"]);
    for (a, b) in got["recall"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["recall"].as_array().unwrap())
    {
        assert_eq!(a["mse"], b["mse"], "recall {}", a["corruption"]);
    }
    // The checkpoint is gone once the record is written.
    let left: Vec<_> = std::fs::read_dir(ckpt.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.contains(".ckpt"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_checkpoint_of_other_settings_is_refused_by_name_and_the_cell_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_fixture(&data);
    let g = tmp.path().join("g.toml");
    std::fs::write(&g, grid("5e-3")).unwrap();
    let out = tmp.path().join("out");
    start_and_kill(&g, &data, &out);
    // The same cell id with another learning rate: `--dry-run` says the checkpoint will not
    // be used, and why, and prices the whole training.
    std::fs::write(&g, grid("4e-3")).unwrap();
    let (line, plan) = dry_run_line(run(&g, &data, &out, "5m"), "-pcn-");
    assert!(
        line.contains(" to run ")
            && line.contains("from epoch 0: its checkpoint (")
            && line.ends_with("epochs) is of other training settings (learning.alpha)"),
        "{plan}"
    );
    let o = run(&g, &data, &out, "5m").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("not used") && err.contains("learning.alpha"),
        "the refusal names the setting: {err}"
    );
    let got = json(&only_record(&out));
    assert!(got["fit"].get("resumed_at_epoch").is_none());
    assert_eq!(got["fit"]["curve"].as_array().unwrap().len(), 1500);
}

/// Starts the run with `--checkpoint-every every`, waits until its cell has started (its lock
/// appears; training then runs 1500 epochs) and sends SIGTERM; returns the run's output.
fn start_and_term(g: &Path, data: &Path, out: &Path, every: &str) -> std::process::Output {
    let mut child = run(g, data, out, every)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = out.join("runs/resume/quick");
    let t = Instant::now();
    while !std::fs::read_dir(&dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".json.lock"))
    }) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(t.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // A liveness bound, not a speed one: a run that acts on the signal ends within an epoch.
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the run did not stop within 300 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn without_checkpoints_a_signal_ends_the_run_at_once_with_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_fixture(&data);
    // Ten million epochs and no plateau stop: hours of training if the signal were not acted
    // on until the end of training; the run must end within the bound below instead.
    let g = tmp.path().join("g.toml");
    std::fs::write(
        &g,
        grid("5e-3")
            .replace("max_epochs = 1500", "max_epochs = 10000000")
            .replace("patience = 100000", "patience = 100000000"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = start_and_term(&g, &data, &out, "off");
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let left: Vec<String> = std::fs::read_dir(out.join("runs/resume/quick"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".json.lock"))
        .collect();
    assert!(left.is_empty(), "no record, no checkpoint: {left:?}");
}

#[test]
fn sigterm_checkpoints_at_the_end_of_the_epoch_exits_4_and_the_run_continues() {
    let (tmp, data, g, want) = setup();

    // Checkpoints every hour: only the signal makes one.
    let out = tmp.path().join("out");
    let o = start_and_term(&g, &data, &out, "1h");
    let dir = out.join("runs/resume/quick");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("run again to resume"), "{err}");
    let ckpt: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".ckpt.json"))
        .collect();
    assert_eq!(ckpt.len(), 1, "the signal wrote a checkpoint");
    let o = run(&g, &data, &out, "1h").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = json(&only_record(&out));
    assert!(got["fit"]["resumed_at_epoch"].as_u64().is_some());
    assert_eq!(got["fit"]["curve"], want["fit"]["curve"]);
}

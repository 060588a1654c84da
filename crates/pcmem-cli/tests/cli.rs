//! The `pcmem` binary as a user runs it: output, errors and exit codes.

mod common;
use common::pcmem;

#[test]
fn unknown_dataset_is_bad_input_with_the_known_names() {
    let out = pcmem()
        .args(["data", "fetch", "cifar100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cifar100") && err.contains("tiny-imagenet"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let out = pcmem().args(["data", "frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn fetch_from_an_unreachable_mirror_fails_cleanly_and_says_where_to_put_the_file() {
    let cache = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens, the connection is refused at once.
    let out = pcmem()
        .args([
            "data",
            "fetch",
            "mnist",
            "--mirror",
            "http://127.0.0.1:9",
            "--cache-dir",
        ])
        .arg(cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://127.0.0.1:9/train-images-idx3-ubyte.gz")
            && err.contains("place it at"),
        "{err}"
    );
    let left: Vec<_> = walk(cache.path());
    assert!(
        left.is_empty(),
        "nothing may be left in the cache: {left:?}"
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.path().is_dir() {
            v.extend(walk(&e.path()));
        } else {
            v.push(e.path());
        }
    }
    v
}

/// `PCMEM_DATA_DIR`, a relative path taken from the workspace root.
fn data_dir_env() -> Option<std::path::PathBuf> {
    pcmem_data::data_dir_env_from(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

#[test]
fn list_and_verify_on_the_real_data_folder() {
    let Some(dir) = data_dir_env() else {
        eprintln!("PCMEM_DATA_DIR not set: skipping");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let out = pcmem()
        .args(["data", "list", "--data-dir"])
        .arg(&dir)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cifar10") && text.contains("2 ok"), "{text}");
    let out = pcmem()
        .args(["data", "verify", "--data-dir"])
        .arg(&dir)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 bad"));
}

#[test]
fn a_device_that_cannot_be_used_is_bad_input_naming_it_and_the_fix() {
    let grid = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/fig3.toml");
    let out_dir = tempfile::tempdir().unwrap();
    let run = |device: &str| {
        pcmem()
            .args(["run", "--dry-run", "--device", device, "--out"])
            .arg(out_dir.path())
            .arg(&grid)
            .output()
            .unwrap()
    };
    let out = run("gpu");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`gpu`") && err.contains("cuda:N"), "{err}");
    let out = run("cuda:0");
    let err = String::from_utf8_lossy(&out.stderr);
    if pcmem_cuda_build() {
        // With the backend compiled in, a machine without a GPU still says why.
        if !out.status.success() {
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("could not open GPU 0"), "{err}");
        }
    } else {
        assert_eq!(out.status.code(), Some(2));
        assert!(
            err.contains("cuda:0") && err.contains("--features cuda"),
            "{err}"
        );
    }
    assert!(run("cpu").status.success());
}

/// Whether the binary under test was built with the `cuda` feature.
fn pcmem_cuda_build() -> bool {
    cfg!(feature = "cuda")
}

#[test]
fn dry_run_counts_one_training_for_the_points_of_a_recall_search() {
    // dev-partial's full profile searches two stopping targets x three momenta: two trainings.
    let grid =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/dev-partial.toml");
    let out_dir = tempfile::tempdir().unwrap();
    let out = pcmem()
        .args(["run"])
        .arg(&grid)
        .args(["--profile", "full", "--dry-run", "--offline", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let status = |s: &str| {
        text.lines()
            .filter(|l| l.contains(&format!(" {s} ")))
            .count()
    };
    assert_eq!((status("to run"), status("shares")), (2, 4), "{text}");
}

#[test]
fn reproduce_dry_run_lists_each_grid_and_the_total_and_runs_nothing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_dir = tempfile::tempdir().unwrap();
    let out = pcmem()
        .current_dir(&root)
        .args([
            "reproduce",
            "--profile",
            "full",
            "--dry-run",
            "--rate",
            "1000",
        ])
        .args(["--only", "fig3", "--only", "fig10", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // fig3's full profile: 2 datasets x 4 N x 2 models x 3 widths; fig10: one cell.
    let row = |id: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {text}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(row("fig3")[1..3], ["48".to_string(), "48".to_string()]);
    assert_eq!(row("fig10")[1..3], ["1".to_string(), "1".to_string()]);
    assert!(
        text.contains("2 grids, 49 cells (49 to run)") && text.contains("1000 GFLOP/s"),
        "{text}"
    );
    // Nothing run, nothing written.
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
    // --rate without --dry-run is bad input.
    let out = pcmem()
        .current_dir(&root)
        .args(["reproduce", "--rate", "1000", "--only", "fig10", "--out"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --dry-run"));
}

/// `--keep-trained` keeps the trained model in the cell's checkpoint: without checkpoints it
/// is bad input that says so, for `run` and for `reproduce`, before anything runs.
#[test]
fn keep_trained_without_checkpoints_is_bad_input() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out_dir = tempfile::tempdir().unwrap();
    for cmd in [
        vec!["run", "experiments/fig10.toml"],
        vec!["reproduce", "--only", "fig10"],
    ] {
        let out = pcmem()
            .current_dir(&root)
            .args(&cmd)
            .args(["--keep-trained", "--checkpoint-every", "off", "--offline"])
            .arg("--out")
            .arg(out_dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.contains("--keep-trained") && err.contains("--checkpoint-every off"),
            "{cmd:?}: {err}"
        );
        assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
    }
}

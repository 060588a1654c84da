//! The harness never passes silently: every bad input a user can give is refused before any
//! work, with the file and key at fault, and every artefact it leaves is whole.

use std::path::Path;

use pcmem_harness::record::{read_all, record_path};
use pcmem_harness::regress::regress;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::Grid;
use pcmem_harness::HarnessError;

mod common;
use common::{fixture_data, options, GRID};

fn parse_err(text: &str) -> String {
    let e = Grid::parse(text, "g.toml", "quick").unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("g.toml"),
        "the message names the file: {msg}"
    );
    msg
}

fn files_under(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                v.extend(files_under(&e.path()));
            } else {
                v.push(e.path());
            }
        }
    }
    v
}

#[test]
fn a_truncated_record_is_moved_aside_and_its_cell_recomputed() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let opts = options(&out, tmp.path());
    assert_eq!(run_grid(&grid, &opts).unwrap().ran, 4);
    let cell = &grid.cells()[1];
    let path = record_path(&out, &grid.id, "quick", cell);
    let text = std::fs::read(&path).unwrap();
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    // Aggregation names the bad file and says how to recompute it.
    let err = read_all(&out).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("pcmem run"),
        "{err}"
    );
    let s = run_grid(&grid, &opts).unwrap();
    assert_eq!((s.ran, s.skipped, s.recovered), (1, 3, 1));
    assert_eq!(read_all(&out).unwrap().len(), 4);
    let aside: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the bad record is kept aside: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), &text[..text.len() / 2]);
}

#[test]
fn non_finite_numbers_are_refused_with_the_key() {
    for (from, to, key) in [
        (
            "max_epochs = 3 }",
            "max_epochs = 3, target_mse = nan }",
            "target_mse",
        ),
        (
            "iterations = 1 }",
            "iterations = 1, free_pixel_rate = nan }",
            "free_pixel_rate",
        ),
        (
            "recall = { steps",
            "inference = { tolerance = nan }\nrecall = { steps",
            "tolerance",
        ),
        (
            "recall = { steps",
            "inference = { gamma = inf }\nrecall = { steps",
            "gamma",
        ),
        (
            "threshold_noise = 0.005",
            "threshold_noise = nan",
            "threshold_noise",
        ),
    ] {
        let text = GRID.replace(from, to);
        assert_ne!(text, GRID);
        let msg = parse_err(&text);
        assert!(msg.contains(key) && msg.contains("finite"), "{msg}");
    }
}

#[test]
fn model_settings_are_checked_for_every_cell_when_the_grid_is_read() {
    for (from, to, want) in [
        ("recall = { steps = 5", "recall = { stpes = 5", "stpes"),
        (
            "max_epochs = 3",
            "max_epochs = \"three\"",
            "learning.max_epochs",
        ),
        ("max_epochs = 3", "max_epochs = 0", "max_epochs"),
        ("beta = 50.0", "beta = -1.0", "beta"),
    ] {
        let msg = parse_err(&GRID.replace(from, to));
        assert!(msg.contains(want), "{from} -> {to}: {msg}");
    }
    let gamma = GRID.replace(
        "recall = { steps = 5",
        "inference = { gamma = -0.1 }\nrecall = { steps = 5",
    );
    let msg = parse_err(&gamma);
    assert!(
        msg.contains("[pcn]") && msg.contains("inference.gamma"),
        "{msg}"
    );
    // An autoencoder table with an unknown key: found even though no cell has run.
    let ae = GRID.replace(
        "model = [\"modern_hopfield\", \"pcn\"]",
        "model = [\"autoencoder\"]",
    ) + "\n[autoencoder]\nlearning_rate = 0.1\n";
    let ae = ae.replace("[profile.quick]\n", "") + "[profile.quick]\n";
    let msg = parse_err(&ae);
    assert!(
        msg.contains("[autoencoder]") && msg.contains("learning_rate"),
        "{msg}"
    );
    // A search point that makes a setting invalid names the point.
    let search = GRID.replace(
        "[profile.quick]",
        "[search.pcn]\n\"inference.gamma\" = [0.1, -1.0]\n\n[profile.quick]",
    );
    let msg = parse_err(&search);
    assert!(msg.contains("search point") && msg.contains("-1"), "{msg}");
}

#[test]
fn masks_that_leave_nothing_known_are_refused() {
    for c in ["top:0", "random:0", "centre:1", "right:1", "top:0.001"] {
        let msg = parse_err(&GRID.replace("\"top:0.5\"", &format!("\"{c}\"")));
        assert!(msg.contains(c) && msg.contains("known"), "{c}: {msg}");
    }
}

#[test]
fn a_cell_larger_than_the_machine_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    // The first cells are small; the last would need hundreds of GiB.
    let text = GRID.replace("hidden = [16]", "hidden = [16, 100000000]");
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    let err = run_grid(&grid, &options(&out, tmp.path())).unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    let msg = err.to_string();
    assert!(
        matches!(err, HarnessError::Memory { .. })
            && msg.contains("n100000000")
            && msg.contains("GiB")
            && msg.contains("machine has"),
        "{msg}"
    );
    assert!(read_all(&out).unwrap().is_empty(), "no cell ran");
    let deep = GRID.replace("hidden = [16]", "hidden = [512]\nlayers = [100000]");
    let grid = Grid::parse(&deep, "g.toml", "quick").unwrap();
    let err = run_grid(&grid, &options(&out, tmp.path())).unwrap_err();
    assert!(matches!(err, HarnessError::Memory { .. }), "{err}");
}

#[test]
fn an_unusable_output_folder_is_found_before_the_first_cell() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let err = run_grid(&grid, &options(&file, tmp.path())).unwrap_err();
    assert!(
        matches!(err, HarnessError::Output { .. }) && err.is_bad_input(),
        "{err}"
    );
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn a_cell_held_by_another_process_is_skipped_and_said() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let held = &grid.cells()[2];
    let path = record_path(&out, &grid.id, "quick", held);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // What a second `pcmem run` does for a cell it computes: an advisory lock on its file.
    let lock = std::fs::File::create(path.with_extension("json.lock")).unwrap();
    lock.lock().unwrap();
    let s = run_grid(&grid, &options(&out, tmp.path())).unwrap();
    assert_eq!((s.ran, s.held_elsewhere), (3, 1));
    assert!(!path.exists(), "the held cell was not computed");
    // Released (the other process ended): the next run computes it.
    lock.unlock().unwrap();
    drop(lock);
    let s = run_grid(&grid, &options(&out, tmp.path())).unwrap();
    assert_eq!((s.ran, s.skipped, s.held_elsewhere), (1, 3, 0));
    let left: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "locks are removed: {left:?}");
}

const HEADER: &str = "grid,dataset,model,hidden,layers,n_images,seed,corruption,search,fraction\n";

fn row(fraction: &str) -> String {
    format!("t,cifar10,pcn,16,2,4,0,noise:0.05,,{fraction}\n")
}

#[test]
fn a_regression_gate_that_checks_nothing_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.csv");
    std::fs::write(
        tmp.path().join("table.csv"),
        format!("{HEADER}{}", row("1.0")),
    )
    .unwrap();
    std::fs::write(&base, format!("{HEADER}{}", row("1.0"))).unwrap();
    let ok = regress(tmp.path(), &base, 0.1).unwrap();
    assert_eq!((ok.checked, ok.failures.len()), (1, 0));
    std::fs::write(&base, format!("{HEADER}{}", row("0.5"))).unwrap();
    assert!(regress(tmp.path(), &base, 0.1).unwrap().failures.is_empty());
    std::fs::write(
        tmp.path().join("table.csv"),
        format!("{HEADER}{}", row("0.3")),
    )
    .unwrap();
    assert_eq!(regress(tmp.path(), &base, 0.1).unwrap().failures.len(), 1);

    std::fs::write(&base, HEADER).unwrap();
    let e = regress(tmp.path(), &base, 0.1).unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("no rows"), "{e}");
    for bad in ["abc", "", "NaN", "\"1.0 \"", "1.5", "-0.1"] {
        std::fs::write(&base, format!("{HEADER}{}{}", row("0.5"), row(bad))).unwrap();
        let e = regress(tmp.path(), &base, 0.1).unwrap_err();
        let msg = e.to_string();
        assert!(
            e.is_bad_input()
                && msg.contains("base.csv")
                && msg.contains("line 3")
                && msg.contains("fraction"),
            "{bad}: {msg}"
        );
    }
    std::fs::write(&base, format!("{HEADER}{}", row("0.5"))).unwrap();
    for tol in [f64::NAN, -0.1, f64::INFINITY] {
        let e = regress(tmp.path(), &base, tol).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("tolerance"),
            "{e}"
        );
    }
    std::fs::write(&base, "grid,fraction\nt,0.5\n").unwrap();
    let e = regress(tmp.path(), &base, 0.1).unwrap_err();
    assert!(e.to_string().contains("no column `dataset`"), "{e}");
}

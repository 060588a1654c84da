//! `pcmem run GRID --dry-run` prices a grid whose own records were made on another kind of
//! device: their epochs, at the rate the other grids of its folder measured on this one.

use std::path::Path;

mod common;
use common::{dry_run_line, mnist_fixture, pcmem, run_grid};

/// A small PCN grid `id` with `n_images` (a few epochs, no early stop).
fn grid(id: &str, n_images: &str) -> String {
    format!(
        r#"
id = "{id}"
title = "dry-run pricing"
paper = "none"
[train]
dataset = ["mnist"]
split = "test"
n_images = {n_images}
model = ["pcn"]
hidden = [16]
[recall]
corruption = ["noise:0.05"]
threshold = 0.005
[pcn]
learning = {{ max_epochs = 4, patience = 100000 }}
inference = {{ gamma = 0.05, steps = 5 }}
recall = {{ steps = 5, iterations = 1 }}
[profile.quick]
"#
    )
}

#[test]
fn a_grid_with_records_from_another_device_is_priced_at_its_siblings_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, exp, out) = (
        tmp.path().join("data"),
        tmp.path().join("exp"),
        tmp.path().join("out"),
    );
    mnist_fixture(&data);
    std::fs::create_dir_all(&exp).unwrap();
    std::fs::write(exp.join("a.toml"), grid("a", "[4]")).unwrap();
    std::fs::write(exp.join("b.toml"), grid("b", "[4, 6]")).unwrap();
    let ran = run_grid(&exp.join("a.toml"), &data, &out).output().unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    // Grid a's CPU record, as if grid b's cell with 4 images had been trained on a GPU.
    let name = "mnist-N4-pcn-n16-L2-s0.json";
    let mut rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("runs/a/quick").join(name)).unwrap(),
    )
    .unwrap();
    rec["grid"] = "b".into();
    rec["device"] = "cuda:0".into();
    let b_dir = out.join("runs/b/quick");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::write(b_dir.join(name), rec.to_string()).unwrap();
    let dry = |grid: &Path| {
        let o = pcmem()
            .arg("run")
            .arg(grid)
            .args(["--dry-run", "--device", "cpu", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // The columns of the line of the cell whose id starts with `cell`: cell, status, bound
    // (value unit), expected (value unit), memory.
    let cols = |text: &str, cell: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(cell))
            .unwrap_or_else(|| panic!("no line of {cell}: {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let text = dry(&exp.join("b.toml"));
    let c = cols(&text, "mnist-N6-pcn");
    // The GPU record's epochs (its whole limit) at grid a's CPU rate, so expected = bound.
    assert_eq!(c[1..3], ["to", "run"], "{text}");
    assert_ne!(c[5], "-", "no expectation: {text}");
    assert_eq!(c[3..5], c[5..7], "{text}");
    assert!(!text.contains("without a rate"), "{text}");
    assert!(
        text.contains("its rate in the other grids' records on this kind of device")
            && text.contains("their epochs count, their rate does not"),
        "{text}"
    );
    // A grid without records of its own: the epochs at which grid a's and b's records
    // stopped (their whole limit) at their rate.
    std::fs::write(exp.join("c.toml"), grid("c", "[4]")).unwrap();
    let text = dry(&exp.join("c.toml"));
    let c = cols(&text, "mnist-N4-pcn");
    assert_eq!(c[3..5], c[5..7], "{text}");
    assert!(
        text.contains("no record of this grid: expected to stop at 100% of the epoch limit"),
        "{text}"
    );
    // A grid alone in its folder with only the GPU record: a bound at the default rate.
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(exp.join("b.toml"), alone.join("b.toml")).unwrap();
    let text = dry(&alone.join("b.toml"));
    assert!(
        text.contains("no rate measured on this kind of device"),
        "{text}"
    );
}

/// A cell stopped during recall (its trained model in its checkpoint, one of its three
/// conditions in `<cell>.ckpt.recall`): `--dry-run` says `recalls`, with its epochs and the
/// conditions done, and prices no training; the run then recalls only the two others (the log
/// says which it kept) and removes the file.
#[test]
fn a_cell_stopped_in_recall_is_priced_and_run_for_the_conditions_left() {
    use pcmem_harness::run::{condition, ModelIdentity, PartialRecall};
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("data"), tmp.path().join("out"));
    mnist_fixture(&data);
    let text = grid("c", "[4]").replace(
        "corruption = [\"noise:0.05\"]",
        "corruption = [\"noise:0.05\", \"top:0.5\", \"top:0.25\"]",
    );
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, &text).unwrap();
    let ran = run_grid(&file, &data, &out)
        .arg("--keep-trained")
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let path = out.join("runs/c/quick/mnist-N4-pcn-n16-L2-s0.json");
    let rec = pcmem_harness::record::RunRecord::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let g = pcmem_harness::spec::Grid::parse(&text, "c.toml", "quick").unwrap();
    let first = &g.corruptions()[0];
    let mut partial = PartialRecall::open(&path, ModelIdentity::of(&rec));
    let key = condition(&g, "paper", &rec.model_config["recall"], first);
    partial.push(key, rec.recall[0].clone()).unwrap();

    let (line, _) = dry_run_line(run_grid(&file, &data, &out), "mnist-N4-pcn");
    assert!(line.contains(" recalls "), "{line}");
    assert!(
        line.contains("trained (4 epochs); 1 of 3 recall conditions done"),
        "{line}"
    );

    let again = run_grid(&file, &data, &out).output().unwrap();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{log}");
    let kept: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("kept from before a stop"))
        .collect();
    assert_eq!(kept.len(), 1, "{log}");
    assert!(
        kept[0].contains("recalled from noise:0.05 (paper arm)"),
        "{log}"
    );
    assert!(log.contains("recalled from top:0.5 (paper arm)"), "{log}");
    let now = pcmem_harness::record::RunRecord::read(&path).unwrap();
    assert_eq!(now.fit.curve, rec.fit.curve);
    for (a, b) in now.recall.iter().zip(&rec.recall) {
        assert_eq!((&a.corruption, &a.mse), (&b.corruption, &b.mse));
    }
    assert!(!path.with_extension("ckpt.recall").exists());
}

//! Development images: claim grids never store them, and a tune rule selects by recall on them only.

use pcmem_harness::aggregate;
use pcmem_harness::record::read_all;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::Grid;

use crate::common::{self, options};

const DEV_GRID: &str = r#"
id = "dev"
title = "development images"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [3]
model = ["modern_hopfield"]
subset = "range:1999-2002"

[recall]
corruption = ["noise:0.05"]
threshold = 0.005

[profile.quick]
"#;

/// Claim grids store no declared development image (CIFAR-10 train 2000-3999); development
/// grids store only those; `range:` selects positions.
#[test]
fn development_images_stay_out_of_claim_grids_and_are_all_a_development_grid_stores() {
    let tmp = tempfile::tempdir().unwrap();
    common::cifar_records(tmp.path(), 2003);
    let run = |text: &str| {
        let out = tmp.path().join(format!("out{}", text.len()));
        let grid = Grid::parse(text, "dev.toml", "quick").unwrap();
        run_grid(&grid, &options(&out, tmp.path())).map(|_| read_all(&out).unwrap())
    };
    // Positions 1999..2001 of a claim grid: two development images.
    let e = run(DEV_GRID).unwrap_err().to_string();
    assert!(
        e.contains("development images") && e.contains("position 2000") && e.contains("2000-3999"),
        "{e}"
    );
    // Marked as a development grid, the same positions hold one image that is not one.
    let dev = DEV_GRID.replace("subset = ", "development = true\nsubset = ");
    let e = run(&dev).unwrap_err().to_string();
    assert!(
        e.contains("1 of its 3 images are not development images"),
        "{e}"
    );
    // Positions 2000..2002 of a development grid: fine, and the range is what was stored.
    let recs = run(&dev.replace("range:1999-2002", "range:2000-2002")).unwrap();
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0].1.data.selection.contains("from: 2000"),
        "{}",
        recs[0].1.data.selection
    );
    // The first images of a claim grid are no development images.
    assert!(run(&DEV_GRID.replace("range:1999-2002", "first")).is_ok());
    // A range that is not one is refused when the grid is read.
    for bad in ["range:5-2", "range:a-b", "range:7"] {
        let e = Grid::parse(
            &DEV_GRID.replace("range:1999-2002", bad),
            "dev.toml",
            "quick",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("range:<from>-<to>"), "{bad}: {e}");
    }
}

const TUNE_GRID: &str = r#"
id = "tune"
title = "a setting chosen by recall on development images"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [3]
model = ["modern_hopfield"]
subset = "range:2000-2002"
development = true

[recall]
corruption = ["noise:0.05", "top:0.5"]
threshold = 0.005

[search.modern_hopfield]
beta = [1e-6, 1000.0]

[tune]
corruption = "noise:0.05"

[profile.quick]
"#;

/// A development grid with `[tune]` selects the search point that recalls the most images
/// under its corruption (here the sharp beta); without the rule the training loss decides
/// (a tie for a one-shot memory: the first point). The rule is refused on claim grids, without
/// a search, or naming a corruption or arm the grid does not have.
#[test]
fn a_tune_rule_selects_by_recall_on_development_images_only() {
    let tmp = tempfile::tempdir().unwrap();
    common::cifar_records(tmp.path(), 2003);
    let out = tmp.path().join("out");
    let grid = Grid::parse(TUNE_GRID, "tune.toml", "quick").unwrap();
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let recs: Vec<_> = read_all(&out)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(recs.len(), 2);
    let chosen = aggregate::selected(&recs);
    let pick = recs.iter().zip(&chosen).find(|(_, &c)| c).unwrap().0;
    assert_eq!(pick.model_config["beta"], 1000.0, "{:?}", pick.cell.search);
    let recalled = |r: &pcmem_harness::record::RunRecord| {
        r.recall[0].mse.iter().filter(|&&m| m < 0.005).count()
    };
    assert!(
        recalled(pick)
            > recalled(
                recs.iter()
                    .find(|r| r.model_config["beta"] == 1e-6)
                    .unwrap()
            )
    );
    // The same records without the rule: the loss decides, a tie, the first point.
    let plain: Vec<_> = recs
        .iter()
        .cloned()
        .map(|mut r| {
            r.tune = None;
            r
        })
        .collect();
    let chosen = aggregate::selected(&plain);
    let pick = plain.iter().zip(&chosen).find(|(_, &c)| c).unwrap().0;
    assert_eq!(pick.model_config["beta"], 1e-6);
    // Ties go to the smaller values as numbers, whatever order the records are read in (file
    // names sort `k-100` before `k-30`).
    let reversed: Vec<_> = plain.iter().rev().cloned().collect();
    let chosen = aggregate::selected(&reversed);
    let pick = reversed.iter().zip(&chosen).find(|(_, &c)| c).unwrap().0;
    assert_eq!(pick.model_config["beta"], 1e-6);
    let points = |values: &[&str]| -> Vec<_> {
        values
            .iter()
            .map(|v| {
                let mut r = plain[0].clone();
                r.cell.search = format!("beta={v}");
                r
            })
            .collect()
    };
    for (values, want) in [
        (&["10", "100", "30"][..], "beta=10"),
        (&["100", "30"][..], "beta=30"),
        (&["1000", "100", "1e-6"][..], "beta=1e-6"),
    ] {
        let recs = points(values);
        let chosen = aggregate::selected(&recs);
        assert_eq!(chosen.iter().filter(|&&c| c).count(), 1);
        let pick = recs.iter().zip(&chosen).find(|(_, &c)| c).unwrap().0;
        assert_eq!(pick.cell.search, want, "tie among {values:?}");
    }
    for (from, to, want) in [
        ("development = true\n", "", "development = true"),
        (
            "[search.modern_hopfield]\nbeta = [1e-6, 1000.0]\n",
            "",
            "has none",
        ),
        (
            "corruption = \"noise:0.05\"\n\n[profile",
            "corruption = \"top:0.25\"\n\n[profile",
            "not among",
        ),
        (
            "[tune]\n",
            "[tune]\narm = \"pcmem\"\n",
            "not one of the grid's arms",
        ),
    ] {
        let e = Grid::parse(&TUNE_GRID.replace(from, to), "tune.toml", "quick")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("tune.toml"),
            "{from:?} -> {to:?}: {e}"
        );
    }
}

//! Grids, the resumable runner, aggregation and claims, end to end on generated CIFAR-10 records.

use pcmem_harness::record::read_all;
use pcmem_harness::report::{coverage, evaluate, Claim, Control, Metric, Op};
use pcmem_harness::run::{plan, run_grid, RunOptions};
use pcmem_harness::spec::Grid;
use pcmem_harness::{aggregate, HarnessError};

mod common;
use common::{fixture_data, options, GRID};

#[test]
fn bad_grids_name_the_file_line_and_key() {
    let unknown = GRID.replace("hidden = [16]", "hidden = [16]\nwidht = [3]");
    let err = Grid::parse(&unknown, "g.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("g.toml") && err.contains("widht") && err.contains("line 11"),
        "{err}"
    );
    let wrong_type = GRID.replace("n_images = [4, 6]", "n_images = \"four\"");
    let err = Grid::parse(&wrong_type, "g.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(err.contains("n_images") && err.contains("line 8"), "{err}");
    let zero = GRID.replace("n_images = [4, 6]", "n_images = [0]");
    assert!(Grid::parse(&zero, "g.toml", "quick")
        .unwrap_err()
        .to_string()
        .contains("n_images contains 0"));
    let dataset = GRID.replace("[\"cifar10\"]", "[\"cifar100\"]");
    assert!(Grid::parse(&dataset, "g.toml", "quick")
        .unwrap_err()
        .to_string()
        .contains("cifar100"));
    let corruption = GRID.replace("\"top:0.5\"", "\"top:1.5\"");
    assert!(Grid::parse(&corruption, "g.toml", "quick")
        .unwrap_err()
        .to_string()
        .contains("top:1.5"));
    let err = Grid::parse(GRID, "g.toml", "full").unwrap_err().to_string();
    assert!(err.contains("profile `full` not defined"), "{err}");
    let bad_profile = GRID.replace(
        "[profile.quick]",
        "[profile.quick]\ntrian = { n_images = [2] }",
    );
    assert!(Grid::parse(&bad_profile, "g.toml", "quick")
        .unwrap_err()
        .to_string()
        .contains("trian"));
    // Model settings are checked when the grid is read, before any cell runs.
    let bad_model_key = GRID.replace("beta = 50.0", "beta = 50.0\nbetta = 1");
    let err = Grid::parse(&bad_model_key, "g.toml", "quick").unwrap_err();
    assert!(
        matches!(err, HarnessError::Spec { .. })
            && err.to_string().contains("g.toml")
            && err.to_string().contains("[modern_hopfield]")
            && err.to_string().contains("betta"),
        "{err}"
    );
}

#[test]
fn runner_writes_records_resumes_forces_and_shards() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let opts = options(&out, tmp.path());
    assert_eq!(grid.cells().len(), 4);
    let s = run_grid(&grid, &opts).unwrap();
    assert_eq!((s.ran, s.skipped), (4, 0));
    let recs = read_all(&out).unwrap();
    assert_eq!(recs.len(), 4);
    let (path, r) = &recs[0];
    assert_eq!(r.recall.len(), 2);
    assert_eq!(r.data.sha256.len(), 64);
    assert!(!r.code_version.is_empty());
    assert!(r.model_config.is_object());
    assert!(
        path.with_file_name(r.recall[0].picture.as_ref().unwrap())
            .exists(),
        "picture written"
    );
    // The modern Hopfield network with a large beta retrieves everything from mild noise.
    let mhn = recs
        .iter()
        .find(|(_, r)| r.cell.model.name() == "modern_hopfield")
        .unwrap();
    assert!(
        mhn.1.recall[0].mse.iter().all(|&m| m < 0.005),
        "{:?}",
        mhn.1.recall[0].mse
    );
    // Resume: nothing to do; remove one record, only it is recomputed.
    assert_eq!(run_grid(&grid, &opts).unwrap().ran, 0);
    std::fs::remove_file(path).unwrap();
    let s = run_grid(&grid, &opts).unwrap();
    assert_eq!((s.ran, s.skipped), (1, 3));
    // A diverged recall (a non-finite MSE) is written as null and read back as NaN: the record
    // stays a finished cell (not recomputed at every run) and that image is not recalled.
    let (p0, r0) = read_all(&out)
        .unwrap()
        .into_iter()
        .find(|(_, r)| r.cell.model.name() == "pcn")
        .unwrap();
    let mut diverged = r0.clone();
    diverged.recall[0].mse[0] = f64::NAN;
    diverged.recall[0].mse[1] = f64::INFINITY;
    diverged.write(&p0).unwrap();
    let back = pcmem_harness::record::RunRecord::read(&p0).unwrap();
    assert!(back.recall[0].mse[0].is_nan() && back.recall[0].mse[1].is_nan());
    assert_eq!(run_grid(&grid, &opts).unwrap().ran, 0);
    let df = aggregate::tidy(std::slice::from_ref(&back)).unwrap();
    let recalled = aggregate::floats(&df, "recalled").unwrap()[0];
    let before = r0.recall[0]
        .mse
        .iter()
        .filter(|&&m| m < r0.recall[0].threshold)
        .count();
    let lost = r0.recall[0].mse[..2]
        .iter()
        .filter(|&&m| m < r0.recall[0].threshold)
        .count();
    assert_eq!(recalled as usize, before - lost);
    r0.write(&p0).unwrap();
    // Force recomputes all.
    let forced = RunOptions {
        force: true,
        ..opts.clone()
    };
    assert_eq!(run_grid(&grid, &forced).unwrap().ran, 4);
    // Shards partition the cells.
    let a = plan(
        &grid,
        &RunOptions {
            shard: Some((1, 2)),
            ..opts.clone()
        },
    )
    .unwrap();
    let b = plan(
        &grid,
        &RunOptions {
            shard: Some((2, 2)),
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(a.len() + b.len(), 4);
    assert!(a.iter().all(|x| b.iter().all(|y| x.0 != y.0)));
    // `only` keeps the cells whose fields match all pairs; an unknown field, or a filter that
    // leaves no cell, is an error that says what the grid's cells have.
    let only = |pairs: &[(&str, &str)]| RunOptions {
        only: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..opts.clone()
    };
    let p = plan(&grid, &only(&[("model", "pcn")])).unwrap();
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|(c, _, _)| c.model.name() == "pcn"));
    let p = plan(&grid, &only(&[("model", "pcn"), ("n_images", "6")])).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.n_images, 6);
    let e = plan(&grid, &only(&[("widht", "3")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`widht`") && e.contains("hidden"), "{e}");
    let e = plan(&grid, &only(&[("n_images", "5")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_images in {4, 6}"), "{e}");
    assert!(plan(
        &grid,
        &RunOptions {
            shard: Some((3, 2)),
            ..opts
        }
    )
    .is_err());
    // Aggregation: one row per cell and corruption; claims evaluate on it.
    let plain: Vec<_> = read_all(&out)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let df = aggregate::tidy(&plain).unwrap();
    assert_eq!(df.height(), 8);
    let claim = |op: Op, value: f64, n: &str| Claim {
        id: "c".into(),
        grid: "t".into(),
        source: "s".into(),
        text: "t".into(),
        paper: "p".into(),
        filter: [
            ("model".to_string(), "modern_hopfield".to_string()),
            ("n_images".to_string(), n.to_string()),
            ("corruption".to_string(), "noise:0.05".to_string()),
        ]
        .into(),
        metric: Metric::Fraction,
        op,
        value: Some(value),
        tolerance: None,
        than: None,
        for_each: None,
        control: None,
    };
    assert_eq!(
        evaluate(&claim(Op::Ge, 1.0, "4"), &df).unwrap().pass,
        Some(true)
    );
    assert_eq!(
        evaluate(&claim(Op::Lt, 0.5, "4"), &df).unwrap().pass,
        Some(false)
    );
    assert_eq!(
        evaluate(&claim(Op::Ge, 1.0, "250"), &df).unwrap().pass,
        None,
        "cells not run are not passed"
    );
    // Coverage: a claim over every N counts its cells with results among the grid's; with
    // one of them missing, its PASS is incomplete (the report says so).
    let mut every_n = claim(Op::Ge, 1.0, "4");
    every_n.filter.remove("n_images");
    assert_eq!(coverage(&every_n, &df, &grid).unwrap(), (2, 2));
    let without_6: Vec<_> = plain
        .iter()
        .filter(|r| !(r.cell.model.name() == "modern_hopfield" && r.cell.n_images == 6))
        .cloned()
        .collect();
    let df6 = aggregate::tidy(&without_6).unwrap();
    assert_eq!(evaluate(&every_n, &df6).unwrap().pass, Some(true));
    assert_eq!(coverage(&every_n, &df6, &grid).unwrap(), (1, 2));
    // Without `for_each` every cell must hold on its own: N = 4 recalls all, N = 6 (made to
    // fail here) none; their mean, 50%, would pass "at most 50%".
    let mut broken = plain.clone();
    for r in broken
        .iter_mut()
        .filter(|r| r.cell.model.name() == "modern_hopfield" && r.cell.n_images == 6)
    {
        r.recall[0].mse.iter_mut().for_each(|m| *m = 1.0);
    }
    let df = aggregate::tidy(&broken).unwrap();
    let mut both = claim(Op::Le, 0.5, "4");
    both.filter.remove("n_images");
    let v = evaluate(&both, &df).unwrap();
    assert_eq!(v.pass, Some(false), "{}", v.ours);
    assert!(
        v.ours.contains("n_images=4") && v.ours.contains("n_images=6"),
        "{}",
        v.ours
    );
    let mut within = claim(Op::Within, 0.9, "4");
    within.tolerance = Some(0.1);
    assert_eq!(evaluate(&within, &df).unwrap().pass, Some(true));
    within.tolerance = Some(0.05);
    assert_eq!(evaluate(&within, &df).unwrap().pass, Some(false));
    // A negative claim ("N = 6 recalls none") passes only if its positive control holds: the
    // same model recalls at N = 4. With the control on the broken N = 6 cells it fails.
    let mut none = claim(Op::Eq, 0.0, "6");
    none.control = Some(Control {
        filter: [("n_images".to_string(), "4".to_string())].into(),
        metric: Metric::Fraction,
        op: Op::Ge,
        value: 1.0,
    });
    let v = evaluate(&none, &df).unwrap();
    assert_eq!(v.pass, Some(true), "{}", v.ours);
    assert!(v.ours.contains("control (n_images=4): 100%"), "{}", v.ours);
    none.control.as_mut().unwrap().filter =
        [("corruption".to_string(), "noise:0.05".to_string())].into();
    let v = evaluate(&none, &df).unwrap();
    assert_eq!(
        v.pass,
        Some(false),
        "a failed control fails the claim: {}",
        v.ours
    );
    assert!(v.ours.contains("FAILED"), "{}", v.ours);
    none.control.as_mut().unwrap().filter = [("n_images".to_string(), "250".to_string())].into();
    assert_eq!(
        evaluate(&none, &df).unwrap().pass,
        None,
        "a control not run leaves the claim not run"
    );
}

#[test]
fn claims_with_unknown_metrics_comparisons_or_columns_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("claims.toml");
    let good = r#"
[[claim]]
id = "a"
grid = "g"
source = "s"
text = "t"
paper = "5"
where = { model = "modern_hopfield", n_images = "50" }
metric = "recalled"
op = "within"
value = 5.0
tolerance = 2.0
"#;
    std::fs::write(&path, good).unwrap();
    assert_eq!(pcmem_harness::report::load_claims(&path).unwrap().len(), 1);
    for (from, to, want) in [
        ("op = \"within\"", "op = \"=>\"", "=>"),
        ("metric = \"recalled\"", "metric = \"recall\"", "recall"),
        ("n_images = \"50\"", "n_imgs = \"50\"", "n_imgs"),
        ("tolerance = 2.0\n", "", "tolerance"),
        ("op = \"within\"", "op = \">=\"", "tolerance"),
    ] {
        std::fs::write(&path, good.replace(from, to)).unwrap();
        let e = pcmem_harness::report::load_claims(&path).unwrap_err();
        assert!(e.to_string().contains(want), "{from} -> {to}: {e}");
    }
    std::fs::write(&path, format!("{good}{good}")).unwrap();
    let e = pcmem_harness::report::load_claims(&path).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    // "At most 5" would pass for a model that recalls nothing: refused without a control...
    let negative = good
        .replace("op = \"within\"", "op = \"<=\"")
        .replace("tolerance = 2.0\n", "");
    std::fs::write(&path, &negative).unwrap();
    let e = pcmem_harness::report::load_claims(&path).unwrap_err();
    assert!(e.to_string().contains("control"), "{e}");
    // ... accepted with one, unless the control itself would pass at zero.
    let ok = format!(
        "{negative}control = {{ where = {{ n_images = \"10\" }}, metric = \"fraction\", op = \">=\", value = 1.0 }}\n"
    );
    std::fs::write(&path, &ok).unwrap();
    assert_eq!(pcmem_harness::report::load_claims(&path).unwrap().len(), 1);
    std::fs::write(
        &path,
        ok.replace("op = \">=\", value = 1.0", "op = \"<=\", value = 1.0"),
    )
    .unwrap();
    let e = pcmem_harness::report::load_claims(&path).unwrap_err();
    assert!(e.to_string().contains("control must fail"), "{e}");
}

const SEARCH_GRID: &str = r#"
id = "s"
title = "search grid"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [4]
model = ["pcn"]
hidden = [16]

[recall]
corruption = ["top:0.5"]
threshold = 0.001
keep_images = 0

[pcn]
learning = { max_epochs = 3 }
recall = { steps = 5, iterations = 1 }

[search.pcn]
"learning.max_epochs" = [1, 4]
"inference.gamma" = [0.05]

[profile.quick]
"#;

#[test]
fn search_points_train_separately_and_the_lowest_training_loss_is_selected() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(SEARCH_GRID, "s.toml", "quick").unwrap();
    let cells = grid.cells();
    assert_eq!(cells.len(), 2);
    assert_eq!(
        cells[0].search,
        "inference.gamma=0.05,learning.max_epochs=1"
    );
    assert!(cells[0]
        .id()
        .ends_with("-inference.gamma-0.05_learning.max_epochs-1"));
    assert_eq!(cells[0].base(), cells[1].base());
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let recs = read_all(&out).unwrap();
    assert_eq!(recs.len(), 2);
    for (_, r) in &recs {
        // The point is applied over [pcn] and written into the resolved config.
        let epochs = if r.cell.search.ends_with("=1") { 1 } else { 4 };
        assert_eq!(r.model_config["learning"]["max_epochs"], epochs);
        assert_eq!(r.model_config["inference"]["gamma"], 0.05);
        assert_eq!(r.fit.curve.len(), epochs);
    }
    let mut plain: Vec<_> = recs.into_iter().map(|(_, r)| r).collect();
    let losses: Vec<f64> = plain.iter().map(aggregate::train_loss).collect();
    let best = if losses[0] <= losses[1] { 0 } else { 1 };
    assert!(aggregate::selected(&plain)[best]);
    assert!(!aggregate::selected(&plain)[1 - best]);
    // A diverged point (NaN loss) is never selected over a finite one.
    plain[1 - best].fit.curve.push(f64::NAN);
    plain[best].fit.curve.push(f64::NAN);
    plain[1 - best].fit.curve.pop();
    let now = aggregate::selected(&plain);
    assert_eq!((now[best], now[1 - best]), (false, true));
    plain[best].fit.curve.pop();
    // Claims and summaries see the selected point only.
    let df = aggregate::tidy(&plain).unwrap();
    assert_eq!(df.height(), 2);
    let summary = aggregate::summary(&df, "s").unwrap();
    assert_eq!(summary.height(), 1);
    let want = plain[best].recall[0]
        .mse
        .iter()
        .filter(|&&m| m < 0.001)
        .count();
    let claim = pcn_recalls_any("c", "s");
    assert_eq!(
        evaluate(&claim, &df).unwrap().ours,
        format!("{:.1}", want as f64)
    );
    // Bad searches are errors naming the table and key.
    for (bad, needle) in [
        (
            "[search.autoencoder]\n\"lr\" = [1e-3]\n",
            "[search.autoencoder]",
        ),
        ("[search.pcn]\n\"inference.gamma\" = []\n", "is empty"),
        (
            "[search.pcn]\n\"inference..gamma\" = [0.1]\n",
            "dotted path",
        ),
    ] {
        let text = SEARCH_GRID.replace("[profile.quick]\n", "").replace(
            "[search.pcn]\n\"learning.max_epochs\" = [1, 4]\n\"inference.gamma\" = [0.05]\n",
            bad,
        ) + "[profile.quick]\n";
        let e = Grid::parse(&text, "s.toml", "quick")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle) && e.contains("s.toml"), "{e}");
    }
}

#[test]
fn the_report_lists_where_a_profile_differs_from_the_full_one() {
    let text = GRID.replace(
        "[profile.quick]\n",
        "[profile.full]\n[profile.quick]\ntrain = { n_images = [2] }\npcn = { learning = { max_epochs = 1 } }\n",
    );
    let quick = Grid::parse(&text, "g.toml", "quick").unwrap();
    let full = Grid::parse(&text, "g.toml", "full").unwrap();
    let t = pcmem_harness::report::size_differences(&[quick], std::slice::from_ref(&full)).unwrap();
    assert!(t.contains("n_images: 2 (full: 4, 6)"), "{t}");
    assert!(t.contains("pcn.learning.max_epochs = 1 (full: 3)"), "{t}");
    assert!(!t.contains("hidden"), "{t}");
    assert_eq!(
        pcmem_harness::report::size_differences(
            std::slice::from_ref(&full),
            std::slice::from_ref(&full)
        ),
        None
    );
}

#[test]
fn per_dataset_settings_reach_their_cells_under_a_search_point() {
    let text = GRID
        .replace("dataset = [\"cifar10\"]", "dataset = [\"cifar10\", \"mnist\"]")
        .replace("n_images = [4, 6]", "n_images = [4]")
        .replace("model = [\"modern_hopfield\", \"pcn\"]", "model = [\"pcn\"]")
        .replace(
            "[profile.quick]",
            "[per_dataset.cifar10.pcn]\nlearning = { max_epochs = 2 }\ninference = { gamma = 0.07 }\n\n\
             [per_dataset.mnist.pcn]\ninference = { steps = 9 }\n\n\
             [search.pcn]\n\"inference.gamma\" = [0.04]\n\n[profile.quick]",
        );
    let grid = Grid::parse(&text, "d.toml", "quick").unwrap();
    let cells = grid.cells();
    let table = |dataset: &str| {
        let cell = cells.iter().find(|c| c.dataset == dataset).unwrap();
        grid.cell_table(cell).unwrap()
    };
    let (cifar, mnist) = (table("cifar10"), table("mnist"));
    // The dataset's table is merged key by key over [pcn]; the search point comes last.
    assert_eq!(cifar["learning"]["max_epochs"].as_integer(), Some(2));
    assert_eq!(cifar["inference"]["gamma"].as_float(), Some(0.04));
    assert!(cifar["inference"].get("steps").is_none());
    assert_eq!(mnist["learning"]["max_epochs"].as_integer(), Some(3));
    assert_eq!(mnist["inference"]["steps"].as_integer(), Some(9));
    assert_eq!(mnist["recall"]["steps"].as_integer(), Some(5));

    // The record of a CIFAR-10 cell carries the merged settings.
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let only_cifar = text.replace("[\"cifar10\", \"mnist\"]", "[\"cifar10\"]");
    let grid = Grid::parse(&only_cifar, "d.toml", "quick").unwrap();
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let recs = read_all(&out).unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0].1;
    assert_eq!(r.model_config["learning"]["max_epochs"], 2);
    assert_eq!(r.fit.curve.len(), 2);

    // Unknown datasets and models are errors naming the table.
    for (bad, needle) in [
        ("[per_dataset.cifar100.pcn]", "cifar100"),
        (
            "[per_dataset.cifar10.autoencoder]",
            "per_dataset.cifar10.autoencoder",
        ),
    ] {
        let e = Grid::parse(
            &text.replace("[per_dataset.cifar10.pcn]", bad),
            "d.toml",
            "quick",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(needle) && e.contains("d.toml"), "{e}");
    }
}

#[test]
fn the_expected_cost_of_remaining_cells_comes_from_finished_ones() {
    use pcmem_harness::estimate::{Expectation, DEFAULT_RATE};
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let cells = grid.cells();
    let pcn = cells.iter().find(|c| c.model.name() == "pcn").unwrap();
    // Nothing finished: a bound at the default rate, no expectation.
    let none = Expectation::default();
    let (bound, expected) = none.seconds(&grid, pcn);
    let r = pcmem_harness::models::resolve(&grid, pcn).unwrap();
    let gflop = pcmem_harness::models::estimate_gflop(&r, pcn.n_images);
    assert!((bound - gflop / DEFAULT_RATE).abs() < 1e-12 && expected.is_none());
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let records: Vec<_> = read_all(&out)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let e = Expectation::from_records(&grid, Some("cpu"), &records);
    let m = e.kinds[&pcn.model];
    // Records from a CPU give a GPU estimate their epochs, not their rate.
    let on_gpu = Expectation::from_records(&grid, Some("cuda:0"), &records);
    let g = on_gpu.kinds[&pcn.model];
    assert_eq!((g.rate, g.train_s, g.records), (0.0, 0.0, 2), "{on_gpu:?}");
    assert_eq!(on_gpu.rate_of(pcn), None);
    assert_eq!(
        on_gpu.seconds(&grid, pcn),
        (gflop / DEFAULT_RATE, None),
        "no rate on the device: a bound at the default rate, no expectation"
    );
    assert_eq!(
        on_gpu.other_device,
        records.iter().filter(|r| r.timings.fit_s > 0.0).count()
    );
    assert_eq!(m.records, 2);
    // max_epochs = 3 and no target: every PCN cell ran its whole epoch limit.
    assert!((m.epoch_fraction - 1.0).abs() < 1e-12, "{m:?}");
    let (bound, expected) = e.seconds(&grid, pcn);
    assert!((bound - gflop / m.rate).abs() < 1e-9 * bound.max(1.0));
    assert!((expected.unwrap() - bound).abs() < 1e-9 * bound.max(1.0));
    // Given the kind's rate on the GPU (other grids' records there): the CPU records' epochs
    // at that rate. A rate of the device's own records comes first.
    let fast_rate = [(pcn.model, 10.0 * m.rate)].into_iter().collect();
    let (gb, ge) = on_gpu.clone().with_rates(fast_rate).seconds(&grid, pcn);
    assert!((gb - bound / 10.0).abs() < 1e-9 * bound, "{gb} vs {bound}");
    assert!((ge.unwrap() - expected.unwrap() / 10.0).abs() < 1e-9 * bound);
    let slow = [(pcn.model, m.rate / 10.0)].into_iter().collect();
    assert_eq!(
        e.clone().with_rates(slow).seconds(&grid, pcn),
        (bound, expected)
    );
    // A cell resumed after its last epoch trained nothing in its recorded run: its few
    // seconds of fit time must not count as the time of all its epochs.
    let mut resumed = records
        .iter()
        .find(|r| r.cell == *pcn)
        .expect("a PCN record")
        .clone();
    resumed.fit.resumed_at_epoch = Some(resumed.fit.curve.len());
    let total = resumed
        .timings
        .fit_total_s
        .expect("records say the total training time");
    // With the total over all runs, the record counts as the uninterrupted one would.
    let twice: Vec<_> = records.iter().cloned().chain([resumed.clone()]).collect();
    let as_whole = Expectation::from_records(&grid, Some("cpu"), &twice).kinds[&pcn.model];
    resumed.timings.fit_s = 1e-6;
    // As today's records say it (the total) and as older ones did (no total: its epochs are
    // not counted for the rate).
    for (fit_total_s, rate) in [(Some(total), as_whole.rate), (None, m.rate)] {
        let mut r = resumed.clone();
        r.timings.fit_total_s = fit_total_s;
        let with_resumed: Vec<_> = records.iter().cloned().chain([r]).collect();
        let e2 = Expectation::from_records(&grid, Some("cpu"), &with_resumed);
        let m2 = e2.kinds[&pcn.model];
        assert_eq!(m2.records, 3);
        assert!((m2.rate - rate).abs() < 1e-9 * rate, "{m2:?} vs {rate}");
        // The tidy table's training time is the whole training where the record says it.
        let df = aggregate::tidy(&with_resumed[with_resumed.len() - 1..]).unwrap();
        let fit_s = aggregate::floats(&df, "fit_s").unwrap();
        assert_eq!(fit_s[0], fit_total_s.unwrap_or(1e-6), "{fit_total_s:?}");
    }
    // At a given rate (another machine): bound and expectation scale, the epochs stay.
    let fast = Expectation::from_records(&grid, None, &records).at_rate(10.0 * m.rate);
    let (fb, fe) = fast.seconds(&grid, pcn);
    assert!(
        (fb - bound / 10.0).abs() < 1e-9 * bound.max(1.0),
        "{fb} vs {bound}"
    );
    assert!((fe.unwrap() - bound / 10.0).abs() < 1e-9 * bound.max(1.0));
    let (nb, _) = Expectation::default().at_rate(1000.0).seconds(&grid, pcn);
    assert!(
        (nb - gflop / 1000.0).abs() < 1e-12,
        "a kind without records: bound at the rate"
    );
    // One-shot memories have no training work to expect.
    assert!(!e.kinds.contains_key(&cells[0].model) || cells[0].model.name() == "pcn");
}

/// The expectation of a cell comes from its series (the cells that differ only in N): the
/// epochs grow with N as fitted within series, a smaller cell that ran out of epochs says the
/// larger one will too, and a series is priced at its own measured rate.
#[test]
fn the_expected_epochs_grow_with_n_within_a_series() {
    use pcmem_harness::estimate::Expectation;
    use pcmem_harness::models::{estimate_gflop, resolve};
    use pcmem_harness::spec::Cell;
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let template = read_all(&out)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r.cell.model.name() == "pcn")
        .expect("a PCN record");
    // The same grid with room to stop early: an epoch limit of 100.
    let big = Grid::parse(
        &GRID.replace("max_epochs = 3", "max_epochs = 100"),
        "g.toml",
        "quick",
    )
    .unwrap();
    let per_epoch = |c: &Cell| estimate_gflop(&resolve(&big, c).unwrap(), c.n_images) / 100.0;
    let cell = |n: usize, hidden: usize| Cell {
        n_images: n,
        hidden,
        ..template.cell.clone()
    };
    // A record of `epochs` epochs of cell (n, hidden) trained at `rate` GFLOP/s.
    let record = |n: usize, hidden: usize, epochs: usize, rate: f64| {
        let mut r = template.clone();
        r.cell = cell(n, hidden);
        r.fit.curve = vec![1.0; epochs];
        r.fit.resumed_at_epoch = None;
        r.timings.fit_total_s = Some(epochs as f64 * per_epoch(&r.cell) / rate);
        r
    };
    let records = [
        // Width 16: 10 epochs at N = 4, 20 at N = 8 (the epochs grow as N^1), at 50 GFLOP/s.
        record(4, 16, 10, 50.0),
        record(8, 16, 20, 50.0),
        // Width 32: 5 epochs at N = 4, 20 at N = 8 (as N^2), at 200 GFLOP/s.
        record(4, 32, 5, 200.0),
        record(8, 32, 20, 200.0),
        // Width 48: 10 epochs at N = 4 (the kind's growth: N^1.5, the mean of the two).
        record(4, 48, 10, 50.0),
        // Width 64: the whole epoch limit at N = 4.
        record(4, 64, 100, 50.0),
    ];
    let e = Expectation::from_records(&big, Some("cpu"), &records);
    let m = e.kinds[&template.cell.model];
    assert_eq!((m.records, m.growth_series), (6, 2), "{m:?}");
    assert!((m.growth.unwrap() - 1.5).abs() < 1e-9, "{m:?}");
    let work: f64 = records
        .iter()
        .map(|r| r.fit.curve.len() as f64 * per_epoch(&r.cell))
        .sum();
    let secs: f64 = records.iter().map(|r| r.timings.fit_total_s.unwrap()).sum();
    assert!((m.rate - work / secs).abs() < 1e-9 * m.rate, "{m:?}");
    for (c, epochs, rate) in [
        // The series' own growth: 10 * 16/4 = 20 * 16/8.
        (cell(16, 16), 40.0, 50.0),
        // Between its two records: 10 * 6/4 = 20 * 6/8.
        (cell(6, 16), 15.0, 50.0),
        // Its own growth N^2 and its own rate: 5 * (6/4)^2 = 20 * (6/8)^2.
        (cell(6, 32), 11.25, 200.0),
        // 20 * (16/8)^2 = 80.
        (cell(16, 32), 80.0, 200.0),
        // One record: the kind's growth, 10 * (16/4)^1.5 = 80.
        (cell(16, 48), 80.0, 50.0),
        // 10 * 16^1.5 = 640 epochs: capped at the limit.
        (cell(64, 48), 100.0, 50.0),
        // A smaller cell of the series ran out of epochs.
        (cell(8, 64), 100.0, 50.0),
        // Only a larger one did: scaled down from it, 100 * (2/4)^1.5.
        (cell(2, 64), 100.0 * 0.5f64.powf(1.5), 50.0),
        // No record in the series: the kind's mean fraction of the limit,
        // (10 + 20 + 5 + 20 + 10 + 100) / 6, at the kind's rate.
        (cell(4, 8), 165.0 / 6.0, m.rate),
    ] {
        let (bound, expected) = e.seconds(&big, &c);
        let w = per_epoch(&c);
        assert!(
            (bound - 100.0 * w / rate).abs() < 1e-9 * bound,
            "{}: bound {bound} vs {}",
            c.id(),
            100.0 * w / rate
        );
        let expected = expected.expect("an expectation");
        assert!(
            (expected - epochs * w / rate).abs() < 1e-9 * bound,
            "{}: {expected} s, not {} epochs' {} s",
            c.id(),
            epochs,
            epochs * w / rate
        );
    }
}

/// The report's list of cells not run: the cells without a record, priced on the CPU by the
/// grid's own CPU records and on a GPU by the grid's own GPU records or, without them, by the
/// rate its model kind reached in another grid's GPU records; one-shot cells cost nothing.
#[test]
fn the_cells_left_are_listed_and_priced_from_the_records_there_are() {
    use pcmem_harness::estimate::Expectation;
    use pcmem_harness::left::{left, section};
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let all = read_all(&out).unwrap();
    assert_eq!(all.len(), grid.cells().len());
    assert!(section(std::slice::from_ref(&grid), &all).is_none());
    // Drop the PCN with 6 images and a Hopfield network's record.
    let gone = |r: &pcmem_harness::record::RunRecord| {
        (r.cell.model.name() == "pcn" && r.cell.n_images == 6)
            || (r.cell.model.name() != "pcn" && r.cell.n_images == 4)
    };
    let kept: Vec<_> = all.iter().filter(|(_, r)| !gone(r)).cloned().collect();
    let rows = left(std::slice::from_ref(&grid), &kept);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.grid, "t");
    assert_eq!(row.cells, 4);
    let mut ids: Vec<String> = row.left.iter().map(|c| c.id()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "cifar10-N4-modern_hopfield-n0-L0-s0",
            "cifar10-N6-pcn-n16-L2-s0"
        ]
    );
    let pcn = row.left.iter().find(|c| c.model.name() == "pcn").unwrap();
    let recs = || kept.iter().map(|(_, r)| r);
    // CPU: the grid's own CPU record of a PCN (with 4 images) prices the one with 6.
    let (bound, expected) =
        Expectation::from_records(&grid, Some("cpu"), recs()).seconds(&grid, pcn);
    assert!(bound > 0.0);
    assert_eq!(row.cpu.training, 1, "the Hopfield network does not train");
    assert_eq!((row.cpu.bound_s, row.cpu.bound_cells), (bound, 1));
    assert_eq!(
        (row.cpu.expected_s, row.cpu.expected_cells),
        (expected.unwrap(), 1)
    );
    // GPU: no record on one anywhere, no price.
    assert_eq!(
        (
            row.gpu.training,
            row.gpu.bound_cells,
            row.gpu.expected_cells
        ),
        (1, 0, 0)
    );
    let md = section(std::slice::from_ref(&grid), &kept).unwrap();
    assert!(
        md.contains("| t | 2 | 4 | cifar10 modern_hopfield N = 4; cifar10 pcn-n16-L2 N = 6 |"),
        "{md}"
    );
    assert!(md.contains("| - | - |"), "{md}");
    // Another grid's GPU record of a PCN, ten times faster: its rate prices this grid's cell,
    // with the epochs of this grid's records.
    let other = Grid::parse(&GRID.replace("id = \"t\"", "id = \"u\""), "u.toml", "quick").unwrap();
    let mut fast = kept
        .iter()
        .find(|(_, r)| r.cell.model.name() == "pcn")
        .unwrap()
        .clone();
    fast.1.grid = "u".into();
    fast.1.device = "cuda:0".into();
    fast.1.timings.fit_s /= 10.0;
    fast.1.timings.fit_total_s = fast.1.timings.fit_total_s.map(|t| t / 10.0);
    let with_gpu: Vec<_> = kept.iter().cloned().chain([fast.clone()]).collect();
    let grids = [grid.clone(), other];
    let rows = left(&grids, &with_gpu);
    let t = rows.iter().find(|r| r.grid == "t").unwrap();
    let gpu_rate =
        Expectation::from_records(&grids[1], Some("cuda"), [&fast.1]).kinds[&pcn.model].rate;
    let cpu_rate = Expectation::from_records(&grid, Some("cpu"), recs()).kinds[&pcn.model].rate;
    assert!(
        (gpu_rate / cpu_rate - 10.0).abs() < 1e-6,
        "{gpu_rate} vs {cpu_rate}"
    );
    assert_eq!((t.gpu.bound_cells, t.gpu.expected_cells), (1, 1));
    assert!((t.gpu.bound_s - bound / 10.0).abs() < 1e-9 * bound, "{t:?}");
    assert!((t.gpu.expected_s - expected.unwrap() / 10.0).abs() < 1e-9 * bound);
    // The CPU column is unchanged by a GPU record.
    assert_eq!(t.cpu, row.cpu);
    // Points of a search over recall settings train once: two points left, one price.
    let searched = Grid::parse(
        &GRID.replace(
            "[profile.quick]",
            "[search.pcn]\n\"recall.steps\" = [3, 7]\n\n[profile.quick]",
        ),
        "g.toml",
        "quick",
    )
    .unwrap();
    let rows = left(std::slice::from_ref(&searched), &kept);
    let pcn_left = rows[0]
        .left
        .iter()
        .filter(|c| c.model.name() == "pcn")
        .count();
    assert!(pcn_left >= 2, "{:?}", rows[0].left);
    assert_eq!(rows[0].cpu.training, pcn_left / 2, "{:?}", rows[0].cpu);
    assert_eq!(rows[0].cpu.bound_cells, pcn_left / 2, "{:?}", rows[0].cpu);
}

/// The claim "the PCN recalls at least 0 images" (it holds wherever the cells ran) on `grid`.
fn pcn_recalls_any(id: &str, grid: &str) -> Claim {
    Claim {
        id: id.into(),
        grid: grid.into(),
        source: "s".into(),
        text: "t".into(),
        paper: "p".into(),
        filter: [("model".to_string(), "pcn".to_string())].into(),
        metric: Metric::Recalled,
        op: Op::Ge,
        value: Some(0.0),
        tolerance: None,
        than: None,
        for_each: None,
        control: None,
    }
}

const ARMS_GRID: &str = r#"
id = "arms"
title = "recall arms"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [4]
model = ["pcn", "modern_hopfield"]
hidden = [16]

[recall]
corruption = ["top:0.5", "noise:0.05"]
threshold = 0.001
keep_images = 2

[pcn]
learning = { max_epochs = 20, optimizer = { kind = "adam", beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }, alpha = 1e-2 }
recall = { steps = 30, iterations = 2 }

[arms.pcmem.pcn]
recall = { known_precision = { kind = "estimated" }, steps = 40 }

[profile.quick]
"#;

/// A grid with a recall arm: each cell trains once and recalls once per arm; the arm's
/// settings are recorded; a model the arm does not name repeats the paper arm's numbers;
/// a record lacking an arm is not a finished cell; arms that change training are refused.
#[test]
fn recall_arms_train_once_and_recall_per_arm() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(ARMS_GRID, "arms.toml", "quick").unwrap();
    assert_eq!(grid.arm_names(), ["paper", "pcmem"]);
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let recs = read_all(&out).unwrap();
    assert_eq!(recs.len(), 2);
    for (path, r) in &recs {
        let arms: Vec<&str> = r.recall.iter().map(|x| x.arm.as_str()).collect();
        assert_eq!(
            arms,
            ["paper", "paper", "pcmem", "pcmem"],
            "{}",
            path.display()
        );
        let (paper, ours) = r.recall.split_at(2);
        if r.cell.model.name() == "pcn" {
            // Trained once: one curve; the arm's resolved recall settings are recorded.
            assert_eq!(r.fit.curve.len(), 20);
            assert_eq!(r.arms["pcmem"]["steps"], 40);
            assert_eq!(r.arms["pcmem"]["known_precision"]["kind"], "estimated");
            assert_eq!(r.model_config["recall"]["steps"], 30);
            assert_ne!(
                paper[0].mse, ours[0].mse,
                "the arm recalls with its own settings"
            );
            assert!(ours[0].picture.as_deref().unwrap().ends_with("__pcmem.png"));
            // Deviations from the paper, generated: the arm changes the model, the paper arm
            // only the solver (Adam, rates, steps).
            let paper_dev = pcmem_harness::deviations::pcn(&r.model_config).unwrap();
            assert!(paper_dev.model.is_empty(), "{paper_dev:?}");
            assert!(paper_dev
                .solver
                .iter()
                .any(|l| l.starts_with("learning.optimizer")));
            let mut cfg = r.model_config.clone();
            cfg["recall"] = r.arms["pcmem"].clone();
            let arm_dev = pcmem_harness::deviations::pcn(&cfg).unwrap();
            assert!(
                arm_dev.model.len() == 1 && arm_dev.model[0].starts_with("recall.known_precision"),
                "{arm_dev:?}"
            );
        } else {
            assert!(r.arms.is_empty());
            assert_eq!(paper[0].mse, ours[0].mse);
        }
    }
    // The tidy table has the arm; a claim can be judged per arm.
    let plain: Vec<_> = recs.iter().map(|(_, r)| r.clone()).collect();
    let df = aggregate::tidy(&plain).unwrap();
    assert_eq!(df.height(), 8);
    // The report shows each picture once: the MHN's arm (unchanged model) shares the paper
    // arm's pictures, the PCN's arm has its own.
    let with_pictures = ARMS_GRID.replace(
        "[profile.quick]",
        "[plot]\nkind = \"capacity\"\nx = \"n_images\"\npictures = true\n\n[profile.quick]",
    );
    let shown_grid = Grid::parse(&with_pictures, "arms.toml", "quick").unwrap();
    let shown = pcmem_harness::report::figures(&shown_grid, &df, &recs, &out).unwrap();
    let pngs: Vec<_> = shown.iter().filter(|p| p.ends_with(".png")).collect();
    let mut unique = pngs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(pngs.len(), unique.len(), "{shown:?}");
    // Each capacity panel comes with its lines' median recall error against the threshold.
    let panels: Vec<_> = pngs
        .iter()
        .filter(|p| p.starts_with("figures/") && !p.ends_with("-mse.png"))
        .collect();
    assert!(!panels.is_empty(), "{shown:?}");
    for p in panels {
        let mse = p.replace(".png", "-mse.png");
        assert!(
            shown.contains(&mse) && out.join(&mse).exists(),
            "{mse}: {shown:?}"
        );
    }
    assert_eq!(
        pngs.iter().filter(|p| p.contains("__pcmem")).count(),
        2,
        "{shown:?}"
    );
    let arms = aggregate::strings(&df, "arm").unwrap();
    assert_eq!(arms.iter().filter(|a| *a == "pcmem").count(), 4);
    // The report judges a claim per arm; a grid that declares no arm recalls as the paper
    // there, and its claims' arm column says so.
    let plain = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let grids = [grid.clone(), plain];
    let claims = [
        pcn_recalls_any("with-arm", "arms"),
        pcn_recalls_any("without-arm", "t"),
    ];
    let records = pcmem_harness::report::Records {
        current: &recs,
        stale: &[],
    };
    let report =
        pcmem_harness::report::write_report(&out, &grids, &grids, &df, records, &claims, "quick")
            .unwrap();
    let md = std::fs::read_to_string(report).unwrap();
    let row = |id: &str| {
        md.lines()
            .find(|l| l.contains(&format!("({id})")))
            .unwrap()
            .to_string()
    };
    assert!(
        row("with-arm").ends_with("| PASS |") && row("with-arm").matches("PASS").count() == 2,
        "{md}"
    );
    assert!(row("without-arm").contains("same as `paper`"), "{md}");
    // A record without the arm's rows is computed again.
    let (path, mut r) = recs
        .into_iter()
        .find(|(_, r)| r.cell.model.name() == "pcn")
        .unwrap();
    r.recall.retain(|x| x.arm == "paper");
    r.write(&path).unwrap();
    let s = run_grid(&grid, &options(&out, tmp.path())).unwrap();
    assert_eq!((s.ran, s.skipped), (1, 1));
    // After a setting of the grid changes, its PCN record is no longer current (the report
    // lists it, naming the key, and does not use it); the MHN's still is.
    let changed = Grid::parse(
        &ARMS_GRID.replace("recall = { steps = 30", "recall = { steps = 31"),
        "arms.toml",
        "quick",
    )
    .unwrap();
    let (current, stale) = pcmem_harness::stale::split_current(&[changed], read_all(&out).unwrap());
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].1.cell.model.name(), "modern_hopfield");
    assert_eq!(stale.len(), 1);
    assert!(stale[0].1.contains("recall.steps"), "{}", stale[0].1);
    // Arms change recall only, are named sensibly and name models of the grid.
    for (from, to, want) in [
        (
            "recall = { known_precision",
            "learning = { alpha = 1.0 }\nrecall = { known_precision",
            "recall settings only",
        ),
        ("[arms.pcmem.pcn]", "[arms.paper.pcn]", "paper"),
        (
            "[arms.pcmem.pcn]",
            "[arms.pcmem.autoencoder]",
            "not among [train] model",
        ),
        ("steps = 40 }", "steps = -4 }", "arms.pcmem"),
    ] {
        let e = Grid::parse(&ARMS_GRID.replace(from, to), "arms.toml", "quick")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("arms.toml"),
            "{from} -> {to}: {e}"
        );
    }
}

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

#[test]
fn search_points_differing_only_in_recall_settings_train_once() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let text = GRID
        .replace(
            "model = [\"modern_hopfield\", \"pcn\"]",
            "model = [\"pcn\"]",
        )
        .replace("n_images = [4, 6]", "n_images = [4]")
        .replace(
            "[profile.quick]",
            "[search.pcn]\n\"recall.steps\" = [3, 7]\n\n[profile.quick]",
        );
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    assert_eq!(grid.cells().len(), 2);
    let s = run_grid(&grid, &options(&out, tmp.path())).unwrap();
    assert_eq!(s.ran, 2);
    let mut recs: Vec<_> = read_all(&out)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    recs.sort_by_key(|r| r.cell.search.clone());
    let (first, second) = (&recs[0], &recs[1]);
    assert_eq!(first.fit.trained_for, None);
    assert_eq!(second.fit.trained_for, Some(first.cell.id()));
    assert_eq!(first.fit.curve, second.fit.curve);
    assert_eq!(first.timings.fit_s, second.timings.fit_s);
    // Each recalled with its own settings.
    assert_eq!(first.model_config["recall"]["steps"], 3);
    assert_eq!(second.model_config["recall"]["steps"], 7);
    let mask = |r: &pcmem_harness::record::RunRecord| {
        r.recall
            .iter()
            .find(|x| x.corruption == "top:0.5")
            .unwrap()
            .steps
    };
    assert_eq!((mask(first), mask(second)), (3, 7));
    // A search over a training setting trains every point.
    let text = text.replace(
        "\"recall.steps\" = [3, 7]",
        "\"learning.max_epochs\" = [2, 3]",
    );
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    let out2 = tmp.path().join("out2");
    run_grid(&grid, &options(&out2, tmp.path())).unwrap();
    let recs = read_all(&out2).unwrap();
    assert!(recs.iter().all(|(_, r)| r.fit.trained_for.is_none()));
    // The autoencoder's recall settings are top-level keys its factory names: points that
    // differ only in them share one training too.
    let text = GRID
        .replace(
            "model = [\"modern_hopfield\", \"pcn\"]",
            "model = [\"autoencoder\"]",
        )
        .replace("n_images = [4, 6]", "n_images = [4]")
        .replace(
            "[profile.quick]",
            "[autoencoder]\nmax_epochs = 5\n\n[search.autoencoder]\nrecall_iterations = [1, 3]\n\n[profile.quick]",
        );
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    let out3 = tmp.path().join("out3");
    run_grid(&grid, &options(&out3, tmp.path())).unwrap();
    let mut recs: Vec<_> = read_all(&out3)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    recs.sort_by_key(|r| r.cell.search.clone());
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].fit.trained_for, None);
    assert_eq!(recs[1].fit.trained_for, Some(recs[0].cell.id()));
    assert_eq!(recs[0].model_config["recall_iterations"], 1);
    assert_eq!(recs[1].model_config["recall_iterations"], 3);
}

/// The test grid with one PCN and one autoencoder cell (4 images), `tables` added before its
/// profile.
fn pcn_and_autoencoder(tables: &str) -> String {
    GRID.replace(
        "model = [\"modern_hopfield\", \"pcn\"]",
        "model = [\"pcn\", \"autoencoder\"]",
    )
    .replace("n_images = [4, 6]", "n_images = [4]")
    .replace("[profile.quick]", &format!("{tables}[profile.quick]"))
}

/// With `keep_trained`, a training cell's last checkpoint (its trained model) stays beside its
/// record; a later run of the cell under other recall settings (the record is then stale)
/// recalls with that model and trains nothing: the same curve, no epoch trained now, the new
/// recall settings. The PCN (stopped at its epoch limit) and the autoencoder (stopped at its
/// target, and at its epoch limit) alike. Without the option the checkpoint is removed.
#[test]
fn kept_trained_models_serve_recall_only_reruns() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let text = pcn_and_autoencoder(
        "[autoencoder]\nmax_epochs = 40\ntarget_mse = 0.0\nrecall_iterations = 1\n\n",
    );
    for ae_target in ["0.0", "1.0"] {
        let text = text.replace("target_mse = 0.0", &format!("target_mse = {ae_target}"));
        let out = tmp.path().join(format!("out-{ae_target}"));
        let opts = RunOptions {
            checkpoint_every: Some(std::time::Duration::from_secs(3600)),
            keep_trained: true,
            ..options(&out, tmp.path())
        };
        let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
        assert_eq!(run_grid(&grid, &opts).unwrap().ran, 2);
        let dir = out.join("runs/t/quick");
        let kept = |dir: &std::path::Path| {
            let mut k: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".ckpt.json"))
                .collect();
            k.sort();
            k
        };
        assert_eq!(kept(&dir).len(), 2, "{:?}", kept(&dir));
        let before: Vec<_> = read_all(&out).unwrap();
        // Other recall settings for both models: both records go stale and are recomputed
        // from the kept models.
        let changed = text
            .replace(
                "recall = { steps = 5, iterations = 1 }",
                "recall = { steps = 9, iterations = 2 }",
            )
            .replace("recall_iterations = 1", "recall_iterations = 4");
        let grid = Grid::parse(&changed, "g.toml", "quick").unwrap();
        assert_eq!(run_grid(&grid, &opts).unwrap().ran, 2);
        let after = read_all(&out).unwrap();
        for ((_, old), (_, new)) in before.iter().zip(&after) {
            let name = new.cell.id();
            assert_eq!(old.cell.id(), name);
            assert_eq!(old.fit.curve, new.fit.curve, "{name}: trained again");
            assert_eq!(
                new.fit.resumed_at_epoch,
                Some(old.fit.curve.len()),
                "{name}: not recalled from its kept model"
            );
            assert_ne!(old.model_config, new.model_config, "{name}");
            if ae_target == "1.0" && name.contains("autoencoder") {
                // Stopped at its target on the first epoch.
                assert_eq!(new.fit.curve.len(), 1, "{name}");
            }
        }
        // Without keep_trained the record's checkpoint goes once it is written.
        let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
        let opts = RunOptions {
            keep_trained: false,
            ..opts
        };
        assert_eq!(run_grid(&grid, &opts).unwrap().ran, 2);
        assert!(kept(&dir).is_empty(), "{:?}", kept(&dir));
        let last = read_all(&out).unwrap();
        for ((_, old), (_, new)) in before.iter().zip(&last) {
            assert_eq!(old.fit.curve, new.fit.curve);
            assert_eq!(old.recall[0].mse, new.recall[0].mse, "{}", new.cell.id());
        }
    }
}

/// A recall-only candidate added to a search later recalls with the model another point of the
/// same training kept (`keep_trained`) and trains nothing; a candidate that changes training
/// trains.
#[test]
fn a_recall_candidate_added_later_recalls_with_a_kept_model() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let text = pcn_and_autoencoder(
        "[autoencoder]\nmax_epochs = 30\n\n[search.pcn]\nSEARCH\n\n[search.autoencoder]\nrecall_iterations = [1]\n\n",
    );
    let out = tmp.path().join("out");
    let opts = RunOptions {
        checkpoint_every: Some(std::time::Duration::from_secs(3600)),
        keep_trained: true,
        ..options(&out, tmp.path())
    };
    let grid = |search: &str, ae: &str| {
        let t = text
            .replace("SEARCH", search)
            .replace("recall_iterations = [1]", ae);
        Grid::parse(&t, "g.toml", "quick").unwrap()
    };
    let first = grid("\"recall.steps\" = [3]", "recall_iterations = [1]");
    assert_eq!(run_grid(&first, &opts).unwrap().ran, 2);
    let later = grid("\"recall.steps\" = [3, 7]", "recall_iterations = [1, 4]");
    // Before it runs, the new points are known to need no training (what --dry-run prices).
    for (c, path, done) in plan(&later, &opts).unwrap() {
        let kept = pcmem_harness::run::kept_training(&later, &c, &path, None).map(|(k, _)| k);
        match done {
            true => assert_eq!(kept.as_ref(), Some(&c), "{}", c.id()),
            false => assert!(kept.is_some_and(|k| k != c), "{}", c.id()),
        }
    }
    assert_eq!(run_grid(&later, &opts).unwrap().ran, 2);
    let recs: Vec<_> = read_all(&out)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(recs.len(), 4);
    for model in ["pcn", "autoencoder"] {
        let mut points: Vec<_> = recs
            .iter()
            .filter(|r| r.cell.model.name() == model)
            .collect();
        points.sort_by_key(|r| r.cell.search.len());
        let (old, new) = (points[0], points[1]);
        assert_eq!(new.fit.trained_for, Some(old.cell.id()), "{model}");
        assert_eq!(
            new.fit.resumed_at_epoch,
            Some(old.fit.curve.len()),
            "{model}"
        );
        assert_eq!(new.fit.curve, old.fit.curve, "{model}");
        assert_ne!(new.model_config, old.model_config, "{model}");
    }
    // A new point that changes training trains (the kept model is not its training).
    let out2 = tmp.path().join("out2");
    let opts2 = RunOptions {
        out: out2.clone(),
        ..opts
    };
    run_grid(
        &grid("\"learning.max_epochs\" = [3]", "recall_iterations = [1]"),
        &opts2,
    )
    .unwrap();
    let trains = grid(
        "\"learning.max_epochs\" = [3, 4]",
        "recall_iterations = [1]",
    );
    assert_eq!(run_grid(&trains, &opts2).unwrap().ran, 1);
    let new = read_all(&out2)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r.cell.search.contains("max_epochs=4"))
        .unwrap();
    assert_eq!(new.fit.trained_for, None);
    assert_eq!(new.fit.resumed_at_epoch, None);
    assert_eq!(new.fit.curve.len(), 4);
}

/// Search points that share one training (they differ only in recall settings) go to one
/// shard of an array and run one after the other there, so each training happens once
/// without `--keep-trained`, even where the grid lists them apart (the recall key sorts
/// before the training key, so the points of one training are not neighbours in the grid).
#[test]
fn points_of_one_training_share_a_shard_and_train_once() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let text = GRID.replace("[\"modern_hopfield\", \"pcn\"]", "[\"pcn\"]").replace(
        "[profile.quick]",
        "[search.pcn]\n\"recall.steps\" = [3, 7]\n\"value_init.kind\" = [\"zero\", \"forward\"]\n\n[profile.quick]",
    );
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    let cells = grid.cells();
    assert_eq!(cells.len(), 8);
    // In the grid's order the points of one training are apart (recall.steps varies slowest).
    assert!(
        cells[0].search.contains("recall.steps=3") && cells[1].search.contains("recall.steps=3")
    );
    let out = tmp.path().join("out");
    let mut trainings = 0;
    let mut seen = Vec::new();
    let mut ran = 0;
    // Three shards: dealt one by one, the four equal cells of N = 6 would go to shards 1, 2,
    // 3, 1, parting the two points of each training.
    for i in 1..=3 {
        let opts = RunOptions {
            shard: Some((i, 3)),
            ..options(&out, tmp.path())
        };
        let planned = plan(&grid, &opts).unwrap();
        // Each shard holds whole trainings, each one's points next to each other.
        for pair in planned.chunks(2) {
            let (a, b) = (&pair[0].0, &pair[1].0);
            assert_eq!(a.base(), b.base());
            assert_ne!(a.search, b.search);
            let training = |c: &pcmem_harness::spec::Cell| -> Vec<String> {
                let points = c.search.split(',');
                points
                    .filter(|p| !p.starts_with("recall."))
                    .map(String::from)
                    .collect()
            };
            assert_eq!(training(a), training(b), "{} / {}", a.id(), b.id());
        }
        eprintln!(
            "PLAN {:?}",
            planned.iter().map(|(c, _, _)| c.id()).collect::<Vec<_>>()
        );
        seen.extend(planned.iter().map(|(c, _, _)| c.id()));
        ran += run_grid(&grid, &opts).unwrap().ran;
    }
    assert_eq!(ran, 8);
    seen.sort();
    let mut all: Vec<_> = cells.iter().map(|c| c.id()).collect();
    all.sort();
    assert_eq!(seen, all, "the shards partition the grid");
    for (_, r) in read_all(&out).unwrap() {
        if r.fit.trained_for.is_none() {
            trainings += 1;
        }
    }
    assert_eq!(
        trainings, 4,
        "four trainings (2 sizes x 2 initialisations of the value nodes) for 8 points"
    );
}

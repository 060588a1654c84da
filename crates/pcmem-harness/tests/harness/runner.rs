//! The resumable runner: records, resume, --force, shards, and the points of one training on one shard.

use pcmem_harness::aggregate;
use pcmem_harness::record::read_all;
use pcmem_harness::report::{coverage, evaluate, Claim, Control, Metric, Op};
use pcmem_harness::run::{plan, run_grid, RunOptions};
use pcmem_harness::spec::Grid;

use crate::common::{fixture_data, options, GRID};

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
    // They are counted as diverged, in the tidy table and in the summary the report shows.
    assert_eq!(aggregate::floats(&df, "diverged").unwrap(), vec![2.0, 0.0]);
    let s = aggregate::summary(&df, &back.grid).unwrap();
    let arm_rows = aggregate::floats(&s, "diverged").unwrap();
    assert_eq!(arm_rows.iter().sum::<f64>(), 2.0, "{s}");
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
    let drop = |model: &str, n: usize| {
        let kept: Vec<_> = plain
            .iter()
            .filter(|r| !(r.cell.model.name() == model && r.cell.n_images == n))
            .cloned()
            .collect();
        aggregate::tidy(&kept).unwrap()
    };
    let df6 = drop("modern_hopfield", 6);
    assert_eq!(evaluate(&every_n, &df6).unwrap().pass, Some(true));
    assert_eq!(coverage(&every_n, &df6, &grid).unwrap(), (1, 2));
    // The other side of a comparison and a control are cells the claim judges too: "the
    // modern Hopfield network recalls no more than the PCN at every N" has 4 cells, and 3 of
    // them with the PCN at N = 6 missing, however its 2 comparisons made so far turn out.
    let mut versus = every_n.clone();
    (versus.op, versus.value) = (Op::Le, None);
    versus.for_each = Some("n_images".into());
    versus.than = Some(
        [
            ("model".to_string(), "pcn".to_string()),
            ("corruption".to_string(), "noise:0.05".to_string()),
        ]
        .into(),
    );
    assert_eq!(coverage(&versus, &df, &grid).unwrap(), (4, 4));
    assert_eq!(coverage(&versus, &drop("pcn", 6), &grid).unwrap(), (3, 4));
    // A control: the same model recalls all at N = 4.
    let at_4 = Control {
        filter: [("n_images".to_string(), "4".to_string())].into(),
        metric: Metric::Fraction,
        op: Op::Ge,
        value: 1.0,
    };
    let mut controlled = claim(Op::Ge, 1.0, "6");
    controlled.control = Some(at_4.clone());
    assert_eq!(coverage(&controlled, &df, &grid).unwrap(), (2, 2));
    assert_eq!(
        coverage(&controlled, &drop("modern_hopfield", 4), &grid).unwrap(),
        (1, 2)
    );
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
    none.control = Some(at_4);
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

//! The work estimate: expected cost and epochs from finished cells, and the priced list of cells left.

use pcmem_harness::aggregate;
use pcmem_harness::record::read_all;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::Grid;

use crate::common::{fixture_data, options, GRID};

/// Runs `grid` into `out` with the images under `data` and returns its records.
fn run_and_read(
    grid: &Grid,
    out: &std::path::Path,
    data: &std::path::Path,
) -> Vec<pcmem_harness::record::RunRecord> {
    run_grid(grid, &options(out, data)).unwrap();
    read_all(out).unwrap().into_iter().map(|(_, r)| r).collect()
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
    let records = run_and_read(&grid, &out, tmp.path());
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
    // A cell resumed from a checkpoint: the epochs after it. Cell (16, 16) expects 40 of its
    // 100 epochs at 50 GFLOP/s.
    let c = cell(16, 16);
    let w = per_epoch(&c) / 50.0;
    for (done, bound, expected) in [
        (0, 100.0, 40.0),
        (10, 90.0, 30.0),
        // Past the expected stop: the bound is what is known to be left.
        (60, 40.0, 40.0),
        (100, 0.0, 0.0),
        (150, 0.0, 0.0),
    ] {
        let (b, e) = e.seconds_after(&big, &c, done);
        let e = e.expect("an expectation");
        assert!(
            (b - bound * w).abs() < 1e-9 * w && (e - expected * w).abs() < 1e-9 * w,
            "after {done} epochs: ({b}, {e}), not ({}, {})",
            bound * w,
            expected * w
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
    // CPU: the grid's own CPU record of a PCN (with 4 images) prices the one with 6: its
    // training, and its recall at the recall rate of that record.
    let on_cpu = Expectation::from_records(&grid, Some("cpu"), recs());
    let (bound, expected) = on_cpu.seconds(&grid, pcn);
    let recall = on_cpu.recall_seconds(&grid, pcn);
    assert!(bound > 0.0 && recall > 0.0);
    assert_eq!(row.cpu.training, 1, "the Hopfield network does not train");
    assert_eq!((row.cpu.bound_s, row.cpu.bound_cells), (bound + recall, 1));
    assert_eq!(
        (row.cpu.expected_s, row.cpu.expected_cells),
        (expected.unwrap() + recall, 1)
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
    for rc in &mut fast.1.recall {
        rc.seconds /= 10.0;
    }
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
    let all = bound + recall;
    assert!((t.gpu.bound_s - all / 10.0).abs() < 1e-9 * all, "{t:?}");
    assert!((t.gpu.expected_s - (expected.unwrap() + recall) / 10.0).abs() < 1e-9 * all);
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

/// A cell's recall is priced apart from its training: every condition of every arm that
/// recalls anew (an arm that leaves a model as it is adds nothing), at the recall rate this
/// grid's records measured on the device (their recall work over their recall seconds), else
/// the pooled one, else the training rate.
#[test]
fn recall_is_priced_per_condition_and_arm_at_the_measured_recall_rate() {
    use pcmem_harness::estimate::{Expectation, Pooled};
    use pcmem_harness::models::{condition_gflop, recall_gflop, resolve};
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    // The PCN recalls anew in arm `fast`, the modern Hopfield network does not.
    let text = GRID.replace(
        "[profile.quick]",
        "[arms.fast.pcn]\nrecall = { steps = 2 }\n\n[profile.quick]",
    );
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    let cells = grid.cells();
    let pcn = cells.iter().find(|c| c.model.name() == "pcn").unwrap();
    let mhn = cells.iter().find(|c| c.model.name() != "pcn").unwrap();
    let r = resolve(&grid, pcn).unwrap();
    let [noise, top] = grid.corruptions().try_into().unwrap();
    let fast = pcmem_harness::models::resolve_arm(&grid, pcn, "fast")
        .unwrap()
        .unwrap()
        .config;
    let per = |config: &serde_json::Value| {
        condition_gflop(pcn, &r, config, &noise) + condition_gflop(pcn, &r, config, &top)
    };
    let work = recall_gflop(&grid, pcn, &r);
    assert!((work - per(&r.config) - per(&fast)).abs() < 1e-15, "{work}");
    // From a partial image: recall.steps (5 in the grid, 2 in `fast`) of four products per
    // weight; d = 3072 pixels, 16 hidden, 2 layers.
    let pair = pcn.n_images as f64 * (3072.0 * 16.0 + 16.0 * 16.0);
    assert!((condition_gflop(pcn, &r, &r.config, &top) - 5.0 * 4.0 * pair / 1e9).abs() < 1e-15);
    assert!((condition_gflop(pcn, &r, &fast, &top) - 2.0 * 4.0 * pair / 1e9).abs() < 1e-15);
    // A cell stopped during recall has left the conditions it had not finished.
    let done = [("fast".to_string(), top.to_string())];
    let left = pcmem_harness::models::recall_gflop_left(&grid, pcn, &r, &done);
    assert!((left - (work - condition_gflop(pcn, &r, &fast, &top))).abs() < 1e-15);
    let m = resolve(&grid, mhn).unwrap();
    assert!(
        (recall_gflop(&grid, mhn, &m)
            - condition_gflop(mhn, &m, &m.config, &noise)
            - condition_gflop(mhn, &m, &m.config, &top))
        .abs()
            < 1e-15
    );

    // No record: the recall at the default rate, beside the training bound.
    let none = Expectation::default();
    let at_default = none.recall_seconds(&grid, pcn);
    assert!((at_default - work / pcmem_harness::estimate::DEFAULT_RATE).abs() < 1e-12);
    let records = run_and_read(&grid, &out, tmp.path());
    let e = Expectation::from_records(&grid, Some("cpu"), &records);
    let (w, s) = e.recall_timed[&pcn.model];
    // Both PCN records' four conditions of their own (two per arm).
    let want_w: f64 = records
        .iter()
        .filter(|x| x.cell.model == pcn.model)
        .map(|x| {
            let rx = resolve(&grid, &x.cell).unwrap();
            recall_gflop(&grid, &x.cell, &rx)
        })
        .sum();
    let want_s: f64 = records
        .iter()
        .filter(|x| x.cell.model == pcn.model)
        .flat_map(|x| &x.recall)
        .map(|rc| rc.seconds)
        .sum();
    assert!((w - want_w).abs() < 1e-12 * want_w, "{w} vs {want_w}");
    assert!((s - want_s).abs() < 1e-12 && s > 0.0);
    assert_eq!(e.recall_rate_of(pcn), w / s);
    assert!((e.recall_seconds(&grid, pcn) - work * s / w).abs() < 1e-9);
    // The modern Hopfield network's copies in arm `fast` count neither work nor seconds.
    let (mw, ms) = e.recall_timed[&mhn.model];
    let own: f64 = records
        .iter()
        .filter(|x| x.cell.model == mhn.model)
        .flat_map(|x| x.recall.iter().filter(|rc| rc.arm == "paper"))
        .map(|rc| rc.seconds)
        .sum();
    assert!((ms - own).abs() < 1e-12, "{ms} vs {own}");
    assert!(mw > 0.0);
    // Another device: no recall timed there; the pooled recall rate, else the training rate.
    let gpu = Expectation::from_records(&grid, Some("cuda:0"), &records);
    assert!(gpu.recall_timed.values().all(|&(_, s)| s == 0.0));
    let pooled = Pooled {
        training: [(pcn.model, 7.0)].into_iter().collect(),
        recall: [(pcn.model, 3.0)].into_iter().collect(),
        epochs: Default::default(),
    };
    let with = gpu.clone().with_pooled(pooled.clone());
    assert_eq!(with.recall_rate_of(pcn), 3.0);
    let training_only = gpu.with_pooled(Pooled {
        recall: Default::default(),
        ..pooled
    });
    assert_eq!(training_only.recall_rate_of(pcn), 7.0);
}

#[test]
fn a_kind_without_records_in_its_grid_is_expected_to_stop_where_it_stopped_elsewhere() {
    use pcmem_harness::estimate::{Expectation, Pooled};
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let mut records = run_and_read(&grid, &out, tmp.path());
    // The two PCN records as if they had stopped after 1 and 2 of their 3 epochs.
    let mut stopped = 0;
    for r in records.iter_mut().filter(|r| r.cell.model.name() == "pcn") {
        stopped += 1;
        r.fit.curve.truncate(stopped);
    }
    assert_eq!(stopped, 2);
    // Another grid of deeper PCNs, without a record.
    let text = GRID
        .replace("id = \"t\"", "id = \"u\"")
        .replace("hidden = [16]", "hidden = [16]\nlayers = [3]");
    let other = Grid::parse(&text, "u.toml", "quick").unwrap();
    let cells = other.cells();
    let deep = cells.iter().find(|c| c.model.name() == "pcn").unwrap();
    assert_eq!(deep.layers, 3);
    let alone = Expectation::from_records(&other, Some("cpu"), &records);
    assert!(alone.kinds.is_empty(), "{alone:?}");
    assert_eq!(alone.expected_fraction(deep), None);
    assert_eq!(alone.seconds(&other, deep).1, None);
    // Pooled over both grids: the mean fraction of the PCN records, (1/3 + 2/3) / 2; the
    // one-shot modern Hopfield network has no epochs.
    let pooled = Expectation::pooled(&[grid.clone(), other.clone()], "cpu", &records);
    assert!(
        (pooled.epochs[&deep.model] - 0.5).abs() < 1e-12,
        "{pooled:?}"
    );
    assert_eq!(pooled.epochs.len(), 1, "{pooled:?}");
    let e = alone.with_pooled(pooled.clone());
    assert!((e.expected_fraction(deep).unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(e.rate_of(deep), Some(pooled.training[&deep.model]));
    let (bound, expected) = e.seconds(&other, deep);
    assert!(
        (expected.unwrap() - 0.5 * bound).abs() < 1e-9 * bound,
        "{bound} {expected:?}"
    );
    // A grid with records of the kind expects its own epochs, not the pooled ones.
    let shallow = grid
        .cells()
        .into_iter()
        .find(|c| c.model.name() == "pcn")
        .unwrap();
    let own = Expectation::from_records(&grid, Some("cpu"), &records).with_pooled(Pooled {
        epochs: [(deep.model, 0.9)].into_iter().collect(),
        ..pooled
    });
    let f = own.expected_fraction(&shallow).unwrap();
    assert!(f <= 2.0 / 3.0 + 1e-12, "{f}");
}

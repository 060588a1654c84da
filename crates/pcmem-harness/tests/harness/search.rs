//! Search points: each trains on its own, the lowest training loss is selected, and points differing only in recall train once.

use pcmem_harness::aggregate;
use pcmem_harness::record::read_all;
use pcmem_harness::report::evaluate;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::Grid;

use crate::common::{fixture_data, options, GRID};
use crate::pcn_recalls_any;

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
    // Every point run: the search is finished. With one point's record gone it is not, the
    // report says so, and records of another profile or grid do not finish it.
    let plain: Vec<_> = recs.iter().map(|(_, r)| r.clone()).collect();
    assert!(aggregate::unfinished_searches(&grid, "quick", &plain).is_empty());
    let base = cells[0].base().id();
    let one = &recs[..1];
    let open = aggregate::unfinished_searches(&grid, "quick", one.iter().map(|(_, r)| r));
    assert_eq!(open, vec![(base.clone(), 1, 2)]);
    let mut elsewhere = recs[1].1.clone();
    elsewhere.profile = "full".into();
    let mut other = recs[1].1.clone();
    other.grid = "t".into();
    let mixed = [recs[0].1.clone(), elsewhere, other];
    assert_eq!(
        aggregate::unfinished_searches(&grid, "quick", &mixed),
        vec![(base.clone(), 1, 2)]
    );
    let tables = |rs: &[(std::path::PathBuf, pcmem_harness::record::RunRecord)]| {
        let df = aggregate::tidy(&rs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()).unwrap();
        let records = pcmem_harness::report::Records {
            current: rs,
            stale: &[],
        };
        let dir = tmp.path().join(format!("report{}", rs.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let grids = [grid.clone()];
        let path =
            pcmem_harness::report::write_report(&dir, &grids, &grids, &df, records, &[], "quick")
                .unwrap();
        std::fs::read_to_string(path).unwrap()
    };
    let md = tables(one);
    assert!(
        md.contains("**The search is not finished**")
            && md.contains(&format!("`{base}`: 1 of 2 points run")),
        "{md}"
    );
    assert!(!tables(&recs).contains("not finished"));
    let mut plain = plain;
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

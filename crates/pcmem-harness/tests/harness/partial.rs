//! A cell stopped during recall recalls, when run again, only the conditions it had not
//! finished: those it had are taken from `<cell>.ckpt.recall`, for the same trained model only.

use pcmem_harness::record::{read_all, RunRecord};
use pcmem_harness::run::{condition, run_grid, ModelIdentity, PartialRecall, RunOptions};
use pcmem_harness::spec::Grid;

use crate::common::{fixture_data, options, GRID};

/// Writes, beside `record_file`, the first condition of `record` (its paper arm) as finished
/// before a stop by the model `model`, with a result no run computes: every MSE 0, 123 s.
fn finished_first(
    grid: &Grid,
    record_file: &std::path::Path,
    record: &RunRecord,
    model: ModelIdentity,
) {
    let first = &grid.corruptions()[0];
    let key = condition(grid, "paper", &record.model_config["recall"], first);
    let mut marked = record.recall[0].clone();
    assert_eq!(marked.corruption, first.to_string());
    marked.mse = vec![0.0; marked.mse.len()];
    marked.seconds = 123.0;
    let mut partial = PartialRecall::open(record_file, model);
    assert!(partial.is_empty());
    partial.push(key, marked).unwrap();
}

#[test]
fn a_cell_stopped_in_recall_reuses_the_conditions_it_finished() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let text = GRID
        .replace(
            "model = [\"modern_hopfield\", \"pcn\"]",
            "model = [\"pcn\"]",
        )
        .replace("n_images = [4, 6]", "n_images = [4]");
    let grid = Grid::parse(&text, "g.toml", "quick").unwrap();
    let out = tmp.path().join("out");
    let opts = RunOptions {
        checkpoint_every: Some(std::time::Duration::from_secs(3600)),
        keep_trained: true,
        ..options(&out, tmp.path())
    };
    assert_eq!(run_grid(&grid, &opts).unwrap().ran, 1);
    let (path, first) = read_all(&out).unwrap().remove(0);
    let leftover = path.with_extension("ckpt.recall");
    assert!(
        !leftover.exists(),
        "no finished conditions are left once the record is written"
    );
    assert_eq!(first.recall.len(), 2);
    let force = RunOptions {
        force: true,
        ..opts
    };

    // The same trained model: its first condition is taken as it was finished, the second
    // recalled again (the same numbers as before), nothing trained.
    finished_first(&grid, &path, &first, ModelIdentity::of(&first));
    assert!(leftover.exists());
    assert_eq!(run_grid(&grid, &force).unwrap().ran, 1);
    let (_, again) = read_all(&out).unwrap().remove(0);
    assert_eq!(again.fit.curve, first.fit.curve);
    assert_eq!(again.fit.resumed_at_epoch, Some(first.fit.curve.len()));
    assert_eq!(again.recall[0].seconds, 123.0);
    assert!(again.recall[0].mse.iter().all(|&m| m == 0.0));
    assert_eq!(again.recall[1].mse, first.recall[1].mse);
    assert_eq!(again.recall[1].corruption, first.recall[1].corruption);
    assert!(!leftover.exists());

    // Another model (one more epoch in its curve), or the same model under other recall
    // settings: nothing is taken, both conditions are recalled again.
    let mut longer = first.clone();
    longer.fit.curve.push(0.5);
    finished_first(&grid, &path, &first, ModelIdentity::of(&longer));
    assert_eq!(run_grid(&grid, &force).unwrap().ran, 1);
    let (_, fresh) = read_all(&out).unwrap().remove(0);
    assert_eq!(fresh.recall[0].mse, first.recall[0].mse);
    assert_ne!(fresh.recall[0].seconds, 123.0);

    let mut other = first.clone();
    other.model_config["recall"]["steps"] = serde_json::json!(6);
    finished_first(&grid, &path, &other, ModelIdentity::of(&first));
    assert_eq!(run_grid(&grid, &force).unwrap().ran, 1);
    let (_, fresh) = read_all(&out).unwrap().remove(0);
    assert_eq!(fresh.recall[0].mse, first.recall[0].mse);
    assert!(!leftover.exists());
}

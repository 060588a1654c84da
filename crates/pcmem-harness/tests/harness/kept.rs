//! Kept trained models: recall-only reruns and candidates added later train nothing.

use pcmem_harness::record::read_all;
use pcmem_harness::run::{plan, run_grid, RunOptions};
use pcmem_harness::spec::Grid;

use crate::common::{fixture_data, options, GRID};

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

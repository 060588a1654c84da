//! Every grid under experiments/ parses with both profiles, and every claim of
//! results/paper/claims.toml names a grid that exists and columns of the tidy table.

use std::path::PathBuf;

use pcmem_harness::report::load_claims;
use pcmem_harness::spec::Grid;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_shipped_grid_parses_with_quick_and_full() {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(root().join("experiments")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            for profile in ["quick", "full"] {
                let g = Grid::load(&p, profile).unwrap_or_else(|e| panic!("{e}"));
                assert!(!g.cells().is_empty());
                if profile == "quick" {
                    ids.push(g.id.clone());
                }
            }
        }
    }
    ids.sort();
    for want in [
        "fig10", "fig10b", "fig3", "fig4", "fig6", "fig6b", "fig7", "fig8", "fig9a", "table1",
    ] {
        assert!(ids.iter().any(|i| i == want), "no grid {want}: {ids:?}");
    }
    // load_claims checks metrics, comparisons, columns and tolerances itself.
    let claims = load_claims(&root().join("results/paper/claims.toml")).unwrap();
    for c in &claims {
        assert!(
            ids.contains(&c.grid),
            "claim {} names unknown grid {}",
            c.id,
            c.grid
        );
    }
}

/// The value of a claim column for a cell of a grid and one of its corruptions, as the tidy
/// table writes it.
fn column(cell: &pcmem_harness::spec::Cell, corruption: &str, col: &str) -> String {
    match col {
        "dataset" => cell.dataset.clone(),
        "model" => cell.model.name().to_string(),
        "hidden" => cell.hidden.to_string(),
        "layers" => cell.layers.to_string(),
        "n_images" => cell.n_images.to_string(),
        "seed" => cell.seed.to_string(),
        "corruption" => corruption.to_string(),
        other => panic!("unknown claim column {other}"),
    }
}

/// A claim whose selector matches no cell of the paper's sizes would read "not run" forever:
/// every `where` (and `than`, and a control's `where` laid over the claim's) must match at
/// least one cell of its grid's full profile.
#[test]
fn every_claim_selects_cells_of_its_grid_at_the_papers_sizes() {
    let claims = load_claims(&root().join("results/paper/claims.toml")).unwrap();
    for c in &claims {
        let grid = Grid::load(
            &root().join("experiments").join(format!("{}.toml", c.grid)),
            "full",
        )
        .unwrap();
        let control = c.control.as_ref().map(|k| {
            let mut f = c.filter.clone();
            f.extend(k.filter.clone());
            f
        });
        for filter in std::iter::once(&c.filter)
            .chain(c.than.iter())
            .chain(control.iter())
        {
            let hit = grid.cells().iter().any(|cell| {
                grid.corruptions().iter().any(|corr| {
                    let corr = corr.to_string();
                    filter.iter().all(|(k, v)| column(cell, &corr, k) == *v)
                })
            });
            assert!(
                hit,
                "claim {}: `{filter:?}` matches no cell of {}'s full profile",
                c.id, c.grid
            );
        }
    }
}

/// The settings a development grid selected (its committed records in `results/runs/<dev>/quick`
/// and `results/full/runs/<dev>/full`) are the ones the claim grids state, in every profile with
/// such records and every point of its search run: `keys` gives, per profile's development grid, the settings `(model, path)`
/// (`path` dotted, e.g. `recall.momentum`) and the grids that must state them for every cell of
/// that model. At least one cell must be checked (the development grid has committed records).
fn grids_state_what_was_selected(
    dev_id: &str,
    keys: impl Fn(&Grid) -> Vec<(&'static str, &'static str, Vec<&'static str>)>,
) {
    use pcmem_harness::record::read_all;
    let at = |config: &serde_json::Value, path: &str| {
        config
            .pointer(&format!("/{}", path.replace('.', "/")))
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    let mut checked = 0;
    for (dir, profile) in [("results", "quick"), ("results/full", "full")] {
        let recs: Vec<_> = read_all(&root().join(dir))
            .unwrap_or_default()
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.grid == dev_id && r.profile == profile)
            .collect();
        if recs.is_empty() {
            continue;
        }
        let dev = Grid::load(&root().join(format!("experiments/{dev_id}.toml")), profile).unwrap();
        // A search with points not run yet has made no choice (its report says so): the grids
        // go on stating the last choice made, and are held to this one once every point has run.
        let open = pcmem_harness::aggregate::unfinished_searches(&dev, profile, &recs);
        if !open.is_empty() {
            eprintln!(
                "{dev_id} ({profile}): search not finished {open:?}; nothing to hold grids to"
            );
            continue;
        }
        let chosen = pcmem_harness::aggregate::selected(&recs);
        let winner = &recs.iter().zip(&chosen).find(|(_, &c)| c).unwrap().0;
        for (model, path, grids) in keys(&dev) {
            let tuned = at(&winner.model_config, path);
            assert!(!tuned.is_null(), "{dev_id}'s records have no {path}");
            for id in grids {
                let grid =
                    Grid::load(&root().join(format!("experiments/{id}.toml")), profile).unwrap();
                for cell in grid.cells() {
                    if cell.model.name() != model {
                        continue;
                    }
                    let r = pcmem_harness::models::resolve(&grid, &cell).unwrap();
                    let stated = at(&r.config, path);
                    assert_eq!(
                        stated, tuned,
                        "{id} ({profile}) states {model} {path} {stated} but {dev_id} selected {tuned}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no committed {dev_id} records: run experiments/{dev_id}.toml"
    );
}

/// The partial-recall momentum of the claim grids is the one `experiments/dev-partial.toml`
/// selected on development images: a claim grid cannot drift from its tuned setting unnoticed.
#[test]
fn claim_grids_state_the_momentum_their_development_grid_selected() {
    grids_state_what_was_selected("dev-partial", |dev| {
        // The momentum serves every partial-recall grid; the stopping target, where the
        // development grid searches it (full profile), is fig6's.
        let mut keys = vec![(
            "pcn",
            "recall.momentum",
            vec!["fig6", "fig7", "fig8", "fig9b"],
        )];
        if dev.search["pcn"].contains_key("learning.target_mse") {
            keys.push(("pcn", "learning.target_mse", vec!["fig6"]));
        }
        keys
    });
}

/// fig3 trains with the plateau decays `experiments/dev-training.toml` selected by training
/// energy on development images.
#[test]
fn fig3_states_the_plateau_decays_its_development_grid_selected() {
    grids_state_what_was_selected("dev-training", |_| {
        vec![("pcn", "learning.plateau_decays", vec!["fig3"])]
    });
}

/// fig3's autoencoders recall with the number of applications of their map that
/// `experiments/dev-ae-recall.toml` selected by recall on development images.
#[test]
fn fig3_states_the_autoencoder_recall_its_development_grid_selected() {
    grids_state_what_was_selected("dev-ae-recall", |_| {
        vec![("autoencoder", "recall_iterations", vec!["fig3"])]
    });
}

/// fig8's autoencoders recall from partial images with the number of applications of their
/// (clamped) map that `experiments/dev-ae-partial.toml` selected by recall on development images.
#[test]
fn fig8_states_the_autoencoder_partial_recall_its_development_grid_selected() {
    grids_state_what_was_selected("dev-ae-partial", |_| {
        vec![("autoencoder", "recall_iterations", vec!["fig8"])]
    });
}

/// fig8's autoencoders train from the initial weights and at the Adam rate that
/// `experiments/dev-ae-training.toml` selected by training loss on development images.
#[test]
fn fig8_states_the_autoencoder_training_its_development_grid_selected() {
    grids_state_what_was_selected("dev-ae-training", |_| {
        vec![
            ("autoencoder", "init", vec!["fig8"]),
            ("autoencoder", "lr", vec!["fig8"]),
        ]
    });
}

/// fig3's and fig4's PCNs recall from noise with the number of applications of F that
/// `experiments/dev-pcn-noise.toml` selected by recall on development images.
#[test]
fn the_noise_grids_state_the_pcn_recall_their_development_grid_selected() {
    grids_state_what_was_selected("dev-pcn-noise", |_| {
        vec![("pcn", "recall.iterations", vec!["fig3", "fig4"])]
    });
}

//! Every grid under experiments/ parses with both profiles, and every claim of
//! results/paper/claims.toml names a grid that exists and columns of the tidy table.

use std::path::PathBuf;

use pcmem_harness::aggregate::CONFIG_COLUMNS;
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
    let claims = load_claims(&root().join("results/paper/claims.toml")).unwrap();
    let columns: Vec<&str> = CONFIG_COLUMNS.into_iter().chain(["seed"]).collect();
    for c in &claims {
        assert!(
            ids.contains(&c.grid),
            "claim {} names unknown grid {}",
            c.id,
            c.grid
        );
        for k in c.filter.keys().chain(c.than.iter().flat_map(|t| t.keys())) {
            assert!(
                columns.contains(&k.as_str()),
                "claim {}: unknown column {k}",
                c.id
            );
        }
        assert!(
            c.value.is_some() != c.than.is_some(),
            "claim {}: give value or than",
            c.id
        );
    }
}

//! Grid files: errors that name the file, line and key; per-dataset settings under a search point.

use pcmem_harness::record::read_all;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::Grid;
use pcmem_harness::HarnessError;

use crate::common::{fixture_data, options, GRID};

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

//! The model registry end to end: every registered model runs through a grid on generated
//! CIFAR-10 records and writes its record; an unregistered table or model is refused when the
//! grid is read, naming it and the registered models.

use pcmem_harness::record::read_all;
use pcmem_harness::registry::MODELS;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::{Grid, ModelKind};

mod common;
use common::{fixture_data, options};

fn grid_of_every_model() -> String {
    let names: Vec<String> = MODELS.iter().map(|f| format!("\"{}\"", f.name())).collect();
    format!(
        r#"
id = "every"
title = "every registered model"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [3]
model = [{}]
hidden = [8]

[recall]
corruption = ["noise:0.01", "top:0.5"]
threshold = 0.005
keep_images = 0

[pcn]
learning = {{ max_epochs = 2 }}
recall = {{ steps = 3, iterations = 1 }}

[autoencoder]
max_epochs = 2
recall_iterations = 2

[hopfield]
max_sweeps = 2

[dense_am]
max_sweeps = 2

[uhn]
similarity = "euclidean"
separation = {{ kind = "max" }}

[drdam]
features = 256
steps = 3

[profile.quick]
"#,
        names.join(", ")
    )
}

#[test]
fn every_registered_model_runs_through_a_grid_and_writes_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(&grid_of_every_model(), "every.toml", "quick").unwrap();
    assert_eq!(grid.cells().len(), MODELS.len());
    let s = run_grid(&grid, &options(&out, tmp.path())).unwrap();
    assert_eq!(s.ran, MODELS.len());
    let recs = read_all(&out).unwrap();
    for f in MODELS {
        let (_, r) = recs
            .iter()
            .find(|(_, r)| r.cell.model.name() == f.name())
            .unwrap_or_else(|| panic!("no record of {}", f.name()));
        assert_eq!(r.recall.len(), 2, "{}", f.name());
        assert!(r.parameters > 0, "{}", f.name());
        // Width and depth are cell axes only where they apply.
        assert_eq!(r.cell.hidden > 0, f.sized(), "{}", f.name());
    }
    // The grid's settings reached the models (as the records' resolved configs show).
    let config = |name: &str| {
        recs.iter()
            .find(|(_, r)| r.cell.model.name() == name)
            .unwrap()
            .1
            .model_config
            .clone()
    };
    assert_eq!(config("uhn")["similarity"], "euclidean");
    assert_eq!(config("uhn")["separation"]["kind"], "max");
    assert_eq!(config("drdam")["features"], 256);
    assert_eq!(config("pcn")["hidden_dim"], 8);
    // The single-shot UHN with max separation recalls the stored images exactly from a light
    // noise: its positive control.
    let (_, uhn) = recs
        .iter()
        .find(|(_, r)| r.cell.model.name() == "uhn")
        .unwrap();
    assert!(
        uhn.recall[0].mse.iter().all(|&m| m == 0.0),
        "{:?}",
        uhn.recall[0].mse
    );
}

#[test]
fn unregistered_tables_and_models_are_refused_naming_the_registry() {
    let text = grid_of_every_model();
    let typo = text.replace("[uhn]", "[uhnn]");
    let line = typo.lines().position(|l| l == "[uhnn]").unwrap() + 1;
    let err = Grid::parse(&typo, "every.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("every.toml")
            && err.contains("`uhnn`")
            && err.contains(&format!("line {line}"))
            && err.contains("drdam"),
        "{err}"
    );
    let model = text.replace("model = [\"pcn\"", "model = [\"pcnn\"");
    let err = Grid::parse(&model, "every.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pcnn") && err.contains("uhn"), "{err}");
    // A model's table is checked against its config when the grid is read.
    let key = text.replace("features = 256", "featurs = 256");
    let err = Grid::parse(&key, "every.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[drdam]") && err.contains("featurs"), "{err}");
    let value = text.replace("similarity = \"euclidean\"", "similarity = \"cosine\"");
    let err = Grid::parse(&value, "every.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[uhn]") && err.contains("cosine"), "{err}");
    // Profiles may set a registered model's table, nothing else unknown.
    let profile = text.replace(
        "[profile.quick]",
        "[profile.quick]\nuhn = { iterations = 2 }",
    );
    let grid = Grid::parse(&profile, "every.toml", "quick").unwrap();
    assert_eq!(grid.models["uhn"]["iterations"].as_integer(), Some(2));
    let profile = text.replace(
        "[profile.quick]",
        "[profile.quick]\nuhm = { iterations = 2 }",
    );
    let err = Grid::parse(&profile, "every.toml", "quick")
        .unwrap_err()
        .to_string();
    assert!(err.contains("uhm") && err.contains("drdam"), "{err}");
    // Model kinds compare and serialise by name.
    let kind = ModelKind::from_name("drdam").unwrap();
    assert_eq!(serde_json::to_string(&kind).unwrap(), "\"drdam\"");
    assert_eq!(
        serde_json::from_str::<ModelKind>("\"drdam\"").unwrap(),
        kind
    );
    assert!(serde_json::from_str::<ModelKind>("\"nope\"").is_err());
}

//! docs/model.md's table of settings states the defaults of `PcnConfig`: each row's default
//! is held here against the config's own serialisation, so the table cannot drift from the code.

use serde_json::json;

#[test]
fn the_settings_table_of_docs_model_md_states_the_defaults() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/model.md"),
    )
    .unwrap();
    let cfg = serde_json::to_value(pcmem_model::PcnConfig::new(8, 4)).unwrap();
    // (the row's first cell, the default cell's text, the defaults it states)
    let rows = [
        (
            "`activation`",
            "`relu`",
            vec![("/activation", json!("relu"))],
        ),
        (
            "`placement`",
            "`pre_synaptic`",
            vec![("/placement", json!("pre_synaptic"))],
        ),
        (
            "`memory_prior`",
            "`learned`",
            vec![("/memory_prior", json!("learned"))],
        ),
        (
            "`value_init`",
            "`zero`",
            vec![("/value_init/kind", json!("zero"))],
        ),
        (
            "`learning.optimizer`",
            "`sgd`",
            vec![("/learning/optimizer/kind", json!("sgd"))],
        ),
        (
            "`learning.gradient_scale`",
            "`sum`",
            vec![("/learning/gradient_scale", json!("sum"))],
        ),
        (
            "`learning.persistent_values`",
            "`false`",
            vec![("/learning/persistent_values", json!(false))],
        ),
        (
            "`learning.patience`, `.min_rel_improvement`, `.plateau_decays`, `.plateau_factor`",
            "100, 1e-4, 0, 0.1",
            vec![
                ("/learning/patience", json!(100)),
                ("/learning/min_rel_improvement", json!(1e-4)),
                ("/learning/plateau_decays", json!(0)),
                ("/learning/plateau_factor", json!(0.1)),
            ],
        ),
        (
            "`inference.steps`, `.gamma`, `.tolerance`",
            "50, 0.1, none",
            vec![
                ("/inference/steps", json!(50)),
                ("/inference/gamma", json!(0.1)),
                ("/inference/tolerance", json!(null)),
            ],
        ),
        (
            "`recall.iterations`, `.steps`, `.gamma`",
            "30, 250, 0.1",
            vec![
                ("/recall/iterations", json!(30)),
                ("/recall/steps", json!(250)),
                ("/recall/gamma", json!(0.1)),
            ],
        ),
        (
            "`recall.noise_relaxation`",
            "`training`",
            vec![("/recall/noise_relaxation", json!("training"))],
        ),
        (
            "`recall.free_pixel_rate`",
            "none",
            vec![("/recall/free_pixel_rate", json!(null))],
        ),
        (
            "`inference.momentum`, `recall.momentum`",
            "0 ",
            vec![
                ("/inference/momentum", json!(0.0)),
                ("/recall/momentum", json!(0.0)),
            ],
        ),
        (
            "`recall.known_precision`",
            "`{ kind = \"fixed\", value = 1.0 }`",
            vec![(
                "/recall/known_precision",
                json!({"kind": "fixed", "value": 1.0}),
            )],
        ),
    ];
    for (field, stated, defaults) in rows {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| {field} |")))
            .unwrap_or_else(|| panic!("docs/model.md has no row for {field}"));
        let cell = row.split('|').nth(2).unwrap();
        assert!(
            cell.trim_start().starts_with(stated.trim_end()),
            "{field}: the table says `{cell}`"
        );
        for (path, value) in defaults {
            assert_eq!(
                cfg.pointer(path),
                Some(&value),
                "{field}: PcnConfig's default at {path}"
            );
        }
    }
}

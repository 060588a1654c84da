//! Claims: typed metrics and comparisons, and the report's list of where a profile differs from the full one.

use pcmem_harness::spec::Grid;

use crate::common::GRID;

#[test]
fn claims_with_unknown_metrics_comparisons_or_columns_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("claims.toml");
    let good = r#"
[[claim]]
id = "a"
grid = "g"
source = "s"
text = "t"
paper = "5"
where = { model = "modern_hopfield", n_images = "50" }
metric = "recalled"
op = "within"
value = 5.0
tolerance = 2.0
"#;
    std::fs::write(&path, good).unwrap();
    assert_eq!(pcmem_harness::report::load_claims(&path).unwrap().len(), 1);
    for (from, to, want) in [
        ("op = \"within\"", "op = \"=>\"", "=>"),
        ("metric = \"recalled\"", "metric = \"recall\"", "recall"),
        ("n_images = \"50\"", "n_imgs = \"50\"", "n_imgs"),
        ("tolerance = 2.0\n", "", "tolerance"),
        ("op = \"within\"", "op = \">=\"", "tolerance"),
    ] {
        std::fs::write(&path, good.replace(from, to)).unwrap();
        let e = pcmem_harness::report::load_claims(&path).unwrap_err();
        assert!(e.to_string().contains(want), "{from} -> {to}: {e}");
    }
    std::fs::write(&path, format!("{good}{good}")).unwrap();
    let e = pcmem_harness::report::load_claims(&path).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    // "At most 5" would pass for a model that recalls nothing: refused without a control...
    let negative = good
        .replace("op = \"within\"", "op = \"<=\"")
        .replace("tolerance = 2.0\n", "");
    std::fs::write(&path, &negative).unwrap();
    let e = pcmem_harness::report::load_claims(&path).unwrap_err();
    assert!(e.to_string().contains("control"), "{e}");
    // ... accepted with one, unless the control itself would pass at zero.
    let ok = format!(
        "{negative}control = {{ where = {{ n_images = \"10\" }}, metric = \"fraction\", op = \">=\", value = 1.0 }}\n"
    );
    std::fs::write(&path, &ok).unwrap();
    assert_eq!(pcmem_harness::report::load_claims(&path).unwrap().len(), 1);
    std::fs::write(
        &path,
        ok.replace("op = \">=\", value = 1.0", "op = \"<=\", value = 1.0"),
    )
    .unwrap();
    let e = pcmem_harness::report::load_claims(&path).unwrap_err();
    assert!(e.to_string().contains("control must fail"), "{e}");
}

#[test]
fn the_report_lists_where_a_profile_differs_from_the_full_one() {
    let text = GRID.replace(
        "[profile.quick]\n",
        "[profile.full]\n[profile.quick]\ntrain = { n_images = [2] }\npcn = { learning = { max_epochs = 1 } }\n",
    );
    let quick = Grid::parse(&text, "g.toml", "quick").unwrap();
    let full = Grid::parse(&text, "g.toml", "full").unwrap();
    let t = pcmem_harness::report::size_differences(&[quick], std::slice::from_ref(&full)).unwrap();
    assert!(t.contains("n_images: 2 (full: 4, 6)"), "{t}");
    assert!(t.contains("pcn.learning.max_epochs = 1 (full: 3)"), "{t}");
    assert!(!t.contains("hidden"), "{t}");
    // A setting only the full profile states is shown with the value this profile takes
    // instead (its default), not the bare word.
    let text = GRID.replace(
        "[profile.quick]\n",
        "[profile.full]\npcn = { inference = { steps = 7 } }\n[profile.quick]\n",
    );
    let quick = Grid::parse(&text, "g.toml", "quick").unwrap();
    let full = Grid::parse(&text, "g.toml", "full").unwrap();
    let pcn = quick
        .cells()
        .into_iter()
        .find(|c| c.model.name() == "pcn")
        .unwrap();
    let default =
        pcmem_harness::models::resolve(&quick, &pcn).unwrap().config["inference"]["steps"].clone();
    assert_ne!(default, 7);
    let t = pcmem_harness::report::size_differences(&[quick], std::slice::from_ref(&full)).unwrap();
    assert!(
        t.contains(&format!(
            "pcn.inference.steps = {default} (the default) (full: 7)"
        )),
        "{t}"
    );
    assert_eq!(
        pcmem_harness::report::size_differences(
            std::slice::from_ref(&full),
            std::slice::from_ref(&full)
        ),
        None
    );
}

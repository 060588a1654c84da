//! Recall arms: one training, one recall per arm.

use pcmem_harness::aggregate;
use pcmem_harness::record::read_all;
use pcmem_harness::run::run_grid;
use pcmem_harness::spec::Grid;

use crate::common::{fixture_data, options, GRID};
use crate::pcn_recalls_any;

const ARMS_GRID: &str = r#"
id = "arms"
title = "recall arms"
paper = "none"

[train]
dataset = ["cifar10"]
n_images = [4]
model = ["pcn", "modern_hopfield"]
hidden = [16]

[recall]
corruption = ["top:0.5", "noise:0.05"]
threshold = 0.001
keep_images = 2

[pcn]
learning = { max_epochs = 20, optimizer = { kind = "adam", beta1 = 0.9, beta2 = 0.999, eps = 1e-8 }, alpha = 1e-2 }
recall = { steps = 30, iterations = 2 }

[arms.pcmem.pcn]
recall = { known_precision = { kind = "estimated" }, steps = 40 }

[profile.quick]
"#;

/// A grid with a recall arm: each cell trains once and recalls once per arm; the arm's
/// settings are recorded; a model the arm does not name repeats the paper arm's numbers;
/// a record lacking an arm is not a finished cell; arms that change training are refused.
#[test]
fn recall_arms_train_once_and_recall_per_arm() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_data(tmp.path());
    let out = tmp.path().join("out");
    let grid = Grid::parse(ARMS_GRID, "arms.toml", "quick").unwrap();
    assert_eq!(grid.arm_names(), ["paper", "pcmem"]);
    run_grid(&grid, &options(&out, tmp.path())).unwrap();
    let recs = read_all(&out).unwrap();
    assert_eq!(recs.len(), 2);
    for (path, r) in &recs {
        let arms: Vec<&str> = r.recall.iter().map(|x| x.arm.as_str()).collect();
        assert_eq!(
            arms,
            ["paper", "paper", "pcmem", "pcmem"],
            "{}",
            path.display()
        );
        let (paper, ours) = r.recall.split_at(2);
        if r.cell.model.name() == "pcn" {
            // Trained once: one curve; the arm's resolved recall settings are recorded.
            assert_eq!(r.fit.curve.len(), 20);
            assert_eq!(r.arms["pcmem"]["steps"], 40);
            assert_eq!(r.arms["pcmem"]["known_precision"]["kind"], "estimated");
            assert_eq!(r.model_config["recall"]["steps"], 30);
            assert_ne!(
                paper[0].mse, ours[0].mse,
                "the arm recalls with its own settings"
            );
            assert!(ours[0].picture.as_deref().unwrap().ends_with("__pcmem.png"));
            // Deviations from the paper, generated: the arm changes the model, the paper arm
            // only the solver (Adam, rates, steps).
            let paper_dev = pcmem_harness::deviations::pcn(&r.model_config).unwrap();
            assert!(paper_dev.model.is_empty(), "{paper_dev:?}");
            assert!(paper_dev
                .solver
                .iter()
                .any(|l| l.starts_with("learning.optimizer")));
            let mut cfg = r.model_config.clone();
            cfg["recall"] = r.arms["pcmem"].clone();
            let arm_dev = pcmem_harness::deviations::pcn(&cfg).unwrap();
            assert!(
                arm_dev.model.len() == 1 && arm_dev.model[0].starts_with("recall.known_precision"),
                "{arm_dev:?}"
            );
        } else {
            assert!(r.arms.is_empty());
            assert_eq!(paper[0].mse, ours[0].mse);
        }
    }
    // The tidy table has the arm; a claim can be judged per arm.
    let plain: Vec<_> = recs.iter().map(|(_, r)| r.clone()).collect();
    let df = aggregate::tidy(&plain).unwrap();
    assert_eq!(df.height(), 8);
    // The report shows each picture once: the MHN's arm (unchanged model) shares the paper
    // arm's pictures, the PCN's arm has its own.
    let with_pictures = ARMS_GRID.replace(
        "[profile.quick]",
        "[plot]\nkind = \"capacity\"\nx = \"n_images\"\npictures = true\n\n[profile.quick]",
    );
    let shown_grid = Grid::parse(&with_pictures, "arms.toml", "quick").unwrap();
    let shown = pcmem_harness::report::figures(&shown_grid, &df, &recs, &out).unwrap();
    let pngs: Vec<_> = shown.iter().filter(|p| p.ends_with(".png")).collect();
    let mut unique = pngs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(pngs.len(), unique.len(), "{shown:?}");
    // Each capacity panel comes with its lines' median recall error against the threshold.
    let panels: Vec<_> = pngs
        .iter()
        .filter(|p| p.starts_with("figures/") && !p.ends_with("-mse.png"))
        .collect();
    assert!(!panels.is_empty(), "{shown:?}");
    for p in panels {
        let mse = p.replace(".png", "-mse.png");
        assert!(
            shown.contains(&mse) && out.join(&mse).exists(),
            "{mse}: {shown:?}"
        );
    }
    assert_eq!(
        pngs.iter().filter(|p| p.contains("__pcmem")).count(),
        2,
        "{shown:?}"
    );
    let arms = aggregate::strings(&df, "arm").unwrap();
    assert_eq!(arms.iter().filter(|a| *a == "pcmem").count(), 4);
    // The report judges a claim per arm; a grid that declares no arm recalls as the paper
    // there, and its claims' arm column says so.
    let plain = Grid::parse(GRID, "g.toml", "quick").unwrap();
    let grids = [grid.clone(), plain];
    let claims = [
        pcn_recalls_any("with-arm", "arms"),
        pcn_recalls_any("without-arm", "t"),
    ];
    let records = pcmem_harness::report::Records {
        current: &recs,
        stale: &[],
    };
    let report =
        pcmem_harness::report::write_report(&out, &grids, &grids, &df, records, &claims, "quick")
            .unwrap();
    let md = std::fs::read_to_string(report).unwrap();
    let row = |id: &str| {
        md.lines()
            .find(|l| l.contains(&format!("({id})")))
            .unwrap()
            .to_string()
    };
    assert!(
        row("with-arm").ends_with("| PASS |") && row("with-arm").matches("PASS").count() == 2,
        "{md}"
    );
    assert!(row("without-arm").contains("same as `paper`"), "{md}");
    // A record without the arm's rows is computed again.
    let (path, mut r) = recs
        .into_iter()
        .find(|(_, r)| r.cell.model.name() == "pcn")
        .unwrap();
    r.recall.retain(|x| x.arm == "paper");
    r.write(&path).unwrap();
    let s = run_grid(&grid, &options(&out, tmp.path())).unwrap();
    assert_eq!((s.ran, s.skipped), (1, 1));
    // After a setting of the grid changes, its PCN record is no longer current (the report
    // lists it, naming the key, and does not use it); the MHN's still is.
    let changed = Grid::parse(
        &ARMS_GRID.replace("recall = { steps = 30", "recall = { steps = 31"),
        "arms.toml",
        "quick",
    )
    .unwrap();
    let (current, stale) = pcmem_harness::stale::split_current(&[changed], read_all(&out).unwrap());
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].1.cell.model.name(), "modern_hopfield");
    assert_eq!(stale.len(), 1);
    assert!(stale[0].1.contains("recall.steps"), "{}", stale[0].1);
    // Arms change recall only, are named sensibly and name models of the grid.
    for (from, to, want) in [
        (
            "recall = { known_precision",
            "learning = { alpha = 1.0 }\nrecall = { known_precision",
            "recall settings only",
        ),
        ("[arms.pcmem.pcn]", "[arms.paper.pcn]", "paper"),
        (
            "[arms.pcmem.pcn]",
            "[arms.pcmem.autoencoder]",
            "not among [train] model",
        ),
        ("steps = 40 }", "steps = -4 }", "arms.pcmem"),
    ] {
        let e = Grid::parse(&ARMS_GRID.replace(from, to), "arms.toml", "quick")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("arms.toml"),
            "{from} -> {to}: {e}"
        );
    }
}

//! Exit codes and leftovers of the harness commands as a user meets them: 2 for bad usage
//! or input (named), 1 for a run that failed, and never a partial file.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{mnist_fixture, run_grid};

fn pcmem(args: &[&str]) -> Command {
    let mut c = common::pcmem();
    c.args(args);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GRID: &str = r#"
id = "mnist-mhn"
title = "modern Hopfield on generated digits"
paper = "none"
[train]
dataset = ["mnist"]
split = "test"
n_images = [8]
model = ["modern_hopfield"]
[recall]
corruption = ["noise:0.05", "top:0.5"]
threshold = 0.005
[profile.quick]
"#;

#[test]
fn a_missing_data_folder_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("g.toml");
    std::fs::write(&grid, GRID).unwrap();
    let o = pcmem(&["run"])
        .arg(&grid)
        .arg("--data-dir")
        .arg(tmp.path().join("no-such-folder"))
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no-such-folder") && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_grids_baselines_and_outputs_exit_2_naming_the_culprit() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("g.toml");
    for (text, want) in [
        (GRID.replace("\"top:0.5\"", "\"top:0\""), "top:0"),
        (
            GRID.replace(
                "[profile.quick]",
                "[modern_hopfield]\nbeta = nan\n[profile.quick]",
            ),
            "beta",
        ),
        (
            GRID.replace(
                "[profile.quick]",
                "[modern_hopfield]\nbetta = 1\n[profile.quick]",
            ),
            "betta",
        ),
    ] {
        std::fs::write(&grid, &text).unwrap();
        for dry in [true, false] {
            let mut c = pcmem(&["run"]);
            c.arg(&grid).arg("--out").arg(tmp.path().join("out"));
            if dry {
                c.arg("--dry-run");
            }
            let o = c.output().unwrap();
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{err}");
            assert!(err.contains("g.toml") && err.contains(want), "{err}");
        }
    }
    // An output path that is a file.
    std::fs::write(&grid, GRID).unwrap();
    let file = tmp.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let data = tmp.path().join("data");
    mnist_fixture(&data);
    let o = run_grid(&grid, &data, &file).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not-a-folder"), "{}", stderr(&o));
    // A baseline with a header only, and a tolerance that is not a number.
    let base = tmp.path().join("base.csv");
    std::fs::write(
        &base,
        "grid,dataset,model,hidden,layers,n_images,seed,corruption,search,fraction\n",
    )
    .unwrap();
    let o = pcmem(&["regress"])
        .arg(tmp.path())
        .arg("--baseline")
        .arg(&base)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("base.csv"), "{}", stderr(&o));
    let o = pcmem(&["regress"])
        .arg(tmp.path())
        .arg("--baseline")
        .arg(&base)
        .args(["--tolerance", "nan"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

fn files_under(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            v.extend(files_under(&e.path()));
        } else {
            v.push(e.path());
        }
    }
    v
}

/// A full disk, made with a file-size limit (`ulimit -f`, SIGXFSZ ignored so that the write
/// fails with EFBIG as on a full disk): the run fails (exit 1) naming the file, and leaves no
/// temporary file, no cut picture and no record.
#[test]
fn a_failed_write_is_an_error_and_leaves_nothing_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    mnist_fixture(&data);
    let grid = tmp.path().join("g.toml");
    std::fs::write(&grid, GRID).unwrap();
    let out = tmp.path().join("out");
    let script = format!(
        "trap '' XFSZ; ulimit -f 4; exec \"$0\" run \"{}\" --data-dir \"{}\" --out \"{}\"",
        grid.display(),
        data.display(),
        out.display()
    );
    let o = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_pcmem")])
        .env_remove("PCMEM_DATA_DIR")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(".png"), "the message names the file: {err}");
    let left = files_under(&out);
    assert!(left.is_empty(), "nothing partial is left behind: {left:?}");
    // Without the limit the same run succeeds and every picture is a whole PNG.
    let o = run_grid(&grid, &data, &out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pngs: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert_eq!(pngs.len(), 2);
    for p in pngs {
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            bytes.len() > 4096 && bytes.ends_with(b"IEND\xaeB`\x82"),
            "{}",
            p.display()
        );
    }
}

//! Grid parsing under random mutations of the shipped grids: never a panic; either the grid
//! is accepted (and every cell's settings, work and memory can be computed) or it is refused
//! with a message naming the file. A sample goes through the binary (`pcmem run --dry-run`):
//! exit 0 or 2, never another code, and stderr names the file when it is 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use pcmem_harness::models;
use pcmem_harness::spec::Grid;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VALUES: &[&str] = &[
    "nan",
    "-inf",
    "inf",
    "-1",
    "0",
    "1e308",
    "-1e-300",
    "9223372036854775807",
    "\"x\"",
    "\"\"",
    "[]",
    "[0]",
    "[-1]",
    "[1e30]",
    "[100000000]",
    "[9223372036854775807]",
    "true",
    "{}",
    "{ kind = \"nope\" }",
    "[\"top:0\"]",
    "[\"noise:-1\"]",
    "[\"top:0.001\"]",
    "[\"cifar100\"]",
    "1.5",
    "0.5",
];

const LINES: &[&str] = &[
    "[pcn]",
    "[autoencoder]",
    "[search.pcn]\n\"inference.gamma\" = [0.1, -1.0]",
    "[per_dataset.cifar10.pcn]\nlearning = { max_epochs = 0 }",
    "[profile.full.pcn]\nlearning = { target_mse = nan }",
    "[profile.quick.train]\nhidden = [0]",
    "x = 1",
    "[recall]",
    "[[train]]",
];

/// One random edit of the text.
fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return String::new();
    }
    let i = rng.gen_range(0..lines.len());
    match rng.gen_range(0..7) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        2 | 3 => {
            if let Some((key, _)) = lines[i].split_once('=') {
                lines[i] = format!("{key}= {}", VALUES.choose(rng).expect("non-empty"));
            }
        }
        4 => {
            let cut = rng.gen_range(0..=text.len());
            return text.get(..cut).unwrap_or(text).to_string();
        }
        5 => {
            if let Some((key, value)) = lines[i].split_once('=') {
                lines[i] = format!("{}x ={value}", key.trim_end());
            }
        }
        _ => lines.insert(i, LINES.choose(rng).expect("non-empty").to_string()),
    }
    lines.join("\n")
}

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "the shipped grids: {v:?}");
    v
}

#[test]
fn mutated_grids_never_panic_and_errors_name_the_file() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let (mut accepted, mut refused) = (0, 0);
    let tmp = tempfile::tempdir().unwrap();
    let mut sample = Vec::new();
    for path in shipped() {
        let text = std::fs::read_to_string(&path).unwrap();
        for k in 0..120 {
            let mut t = mutate(&text, &mut rng);
            if k % 3 == 0 {
                t = mutate(&t, &mut rng);
            }
            for profile in ["quick", "full"] {
                let parsed = std::panic::catch_unwind(|| Grid::parse(&t, "mutated.toml", profile));
                let parsed = parsed.unwrap_or_else(|_| panic!("panic on:\n{t}"));
                match parsed {
                    Ok(grid) => {
                        accepted += 1;
                        for cell in grid.cells() {
                            let r = models::resolve(&grid, &cell)
                                .unwrap_or_else(|e| panic!("accepted but {e}:\n{t}"));
                            assert!(r.memory_bytes.is_finite() && r.memory_bytes > 0.0);
                            assert!(models::estimate_gflop(&r, cell.n_images).is_finite());
                            let recall = models::recall_gflop(&grid, &cell, &r);
                            assert!(recall.is_finite() && recall >= 0.0, "{recall}:\n{t}");
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        let msg = e.to_string();
                        assert!(e.is_bad_input(), "{msg}");
                        assert!(msg.starts_with("mutated.toml"), "{msg}\n---\n{t}");
                    }
                }
            }
            if k % 20 == 0 {
                let file = tmp.path().join(format!("m{}.toml", sample.len()));
                std::fs::write(&file, &t).unwrap();
                sample.push(file);
            }
        }
    }
    eprintln!("{accepted} accepted, {refused} refused");
    assert!(accepted > 100 && refused > 100, "{accepted} / {refused}");
    for file in sample {
        let out = Command::new(env!("CARGO_BIN_EXE_pcmem"))
            .arg("run")
            .arg(&file)
            .args(["--dry-run", "--profile", "quick", "--out"])
            .arg(tmp.path().join("out"))
            .env_remove("PCMEM_DATA_DIR")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(2) => assert!(err.contains(&*file.to_string_lossy()), "{err}"),
            other => panic!("exit {other:?} for {}: {err}", file.display()),
        }
    }
}

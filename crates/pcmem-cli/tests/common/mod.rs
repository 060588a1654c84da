//! Fixtures and commands shared by the CLI tests.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The `pcmem` binary, with none of the environment variables that would point it at this
/// machine's data, cache or mirror: a test says where everything is.
pub fn pcmem() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pcmem"));
    c.env_remove("PCMEM_DATA_DIR")
        .env_remove("PCMEM_MIRROR")
        .env_remove("PCMEM_CACHE_DIR");
    c
}

/// `pcmem run GRID --data-dir DATA --out OUT`, ready for more arguments.
pub fn run_grid(grid: &Path, data: &Path, out: &Path) -> Command {
    let mut c = pcmem();
    c.arg("run")
        .arg(grid)
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out);
    c
}

/// Runs `cmd` with `--dry-run` (it must succeed) and returns the listing's line of the cell
/// whose id contains `cell`, then the whole listing.
pub fn dry_run_line(mut cmd: Command, cell: &str) -> (String, String) {
    let o = cmd.arg("--dry-run").output().unwrap();
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{plan}");
    let line = plan
        .lines()
        .find(|l| l.contains(cell))
        .unwrap_or_else(|| panic!("no line of {cell}: {plan}"))
        .to_string();
    (line, plan)
}

/// Eight generated 28x28 digits in the official uncompressed MNIST test layout.
pub fn mnist_fixture(dir: &Path) {
    let n = 8u32;
    let mut images = [0x0000_0803u32, n, 28, 28]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    for k in 0..n {
        images.extend((0..784u32).map(|i| if (i * (k + 2) / 7) % 3 == 0 { 255 } else { 0 }));
    }
    let mut labels = [0x0000_0801u32, n]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    labels.extend((0..n as u8).map(|k| k % 10));
    std::fs::create_dir_all(dir.join("mnist")).unwrap();
    std::fs::write(dir.join("mnist/t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("mnist/t10k-labels-idx1-ubyte"), labels).unwrap();
}

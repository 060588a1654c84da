//! Records the code version for run records: the git commit, with `-dirty` when the code it
//! was built from (`crates/`, `Cargo.toml`, `Cargo.lock`) has uncommitted changes. Records,
//! reports, grids and docs being edited do not make a binary dirty: grids are read at run time
//! and every record carries the resolved settings it ran with.
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-C", "../.."])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let version = match git(&["rev-parse", "--short=12", "HEAD"]).filter(|s| !s.is_empty()) {
        Some(commit) => {
            let code = ["crates", "Cargo.toml", "Cargo.lock"];
            let mut args = vec!["status", "--porcelain", "--"];
            args.extend(code);
            match git(&args) {
                Some(changes) if changes.is_empty() => commit,
                _ => format!("{commit}-dirty"),
            }
        }
        None => format!(
            "v{}-nogit",
            std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
        ),
    };
    println!("cargo:rustc-env=PCMEM_CODE_VERSION={version}");
    for path in [
        "../../.git/HEAD",
        "../../.git/index",
        "../../.git/refs",
        "../../crates",
        "../../Cargo.toml",
        "../../Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}

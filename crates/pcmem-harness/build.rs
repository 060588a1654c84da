//! Records the code version (git commit, `-dirty` when the tree has changes) for run records.
fn main() {
    let version = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            format!(
                "v{}-nogit",
                std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
            )
        });
    println!("cargo:rustc-env=PCMEM_CODE_VERSION={version}");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/index");
}

//! Fixtures shared by the CLI tests.

use std::path::Path;

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

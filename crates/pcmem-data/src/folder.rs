//! Your own images as memories: every PNG or JPEG of a folder, in file-name order, as RGB
//! rows of one size. Images of different sizes are an error naming two of them unless a size
//! is given, in which case every image is resized to exactly that size (bilinear, aspect ratio
//! not kept). Files with other extensions are ignored; an image that cannot be decoded is an
//! error naming it.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! for (k, name) in ["b.png", "a.png"].iter().enumerate() {
//!     image::RgbImage::from_pixel(4, 3, image::Rgb([40 * k as u8, 0, 255]))
//!         .save(dir.path().join(name))?;
//! }
//! let set = pcmem_data::folder::load_folder(dir.path(), None)?;
//! assert_eq!((set.len(), set.shape), (2, (3, 3, 4)));
//! assert_eq!(set.names, ["a.png", "b.png"]);
//! let small = pcmem_data::folder::load_folder(dir.path(), Some((2, 2)))?;
//! assert_eq!(small.shape, (3, 2, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::error::{io_err, DataError, Result};
use crate::image_set::{sha256_hex, ImageSet};

/// Extensions read as images (case-insensitive).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn bad(path: &Path, reason: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason,
    }
}

/// The image files of `dir`, sorted by name.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| {
                    EXTENSIONS.contains(&x.to_string_lossy().to_ascii_lowercase().as_str())
                })
        })
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            reason: format!("no images ({}) in this folder", EXTENSIONS.join(", ")),
        });
    }
    Ok(v)
}

/// Decodes one image file to RGB.
pub fn read_rgb(path: &Path) -> Result<image::RgbImage> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Ok(image::load_from_memory(&bytes)
        .map_err(|e| bad(path, format!("not a readable image ({e})")))?
        .to_rgb8())
}

/// Channel-major `[0, 1]` values of `img`, resized to `(width, height)` when it differs.
pub fn to_row(img: &image::RgbImage, (w, h): (u32, u32)) -> Vec<f32> {
    let img = if img.dimensions() == (w, h) {
        img.clone()
    } else {
        image::imageops::resize(img, w, h, FilterType::Triangle)
    };
    let n = (w * h) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p[c] as f32 / 255.0;
        }
    }
    out
}

/// Every image of `dir` as one set; `size` = `(width, height)` to resize to.
pub fn load_folder(dir: &Path, size: Option<(u32, u32)>) -> Result<ImageSet> {
    let files = image_files(dir)?;
    let mut images = Vec::with_capacity(files.len());
    for f in &files {
        images.push(read_rgb(f)?);
    }
    let (w, h) = match size {
        Some(s) => s,
        None => {
            let first = images[0].dimensions();
            if let Some(k) = images.iter().position(|i| i.dimensions() != first) {
                let other = images[k].dimensions();
                return Err(DataError::Invalid(format!(
                    "{} is {}x{} but {} is {}x{}: pass --size WxH to resize every image to one size",
                    files[0].display(),
                    first.0,
                    first.1,
                    files[k].display(),
                    other.0,
                    other.1
                )));
            }
            first
        }
    };
    if w == 0 || h == 0 {
        return Err(DataError::Invalid(format!(
            "size {w}x{h}: both sides must be at least 1"
        )));
    }
    let mut pixels = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for img in &images {
        pixels.extend(to_row(img, (w, h)));
    }
    let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let names = files
        .iter()
        .map(|f| {
            f.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    Ok(ImageSet {
        sha256: sha256_hex([bytes.as_slice()]),
        labels: vec![0; images.len()],
        names,
        shape: (3, h as usize, w as usize),
        source: dir.display().to_string(),
        positions: (0..images.len()).collect(),
        pixels,
    })
}

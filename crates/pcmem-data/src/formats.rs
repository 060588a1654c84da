//! Readers for the official on-disk formats: MNIST idx files (optionally gzipped), CIFAR-10
//! binary records, and folders or zip archives of JPEG images (Tiny ImageNet, ImageNet).
//!
//! Each reader selects the wanted images before decoding and hashes exactly their source bytes.
//!
//! ```
//! use pcmem_data::formats::{load_cifar, CIFAR_RECORD};
//! use pcmem_data::Selection;
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("train.bin");
//! let mut bytes = vec![0u8; 2 * CIFAR_RECORD];
//! bytes[0] = 3; // label of the first image
//! bytes[1] = 255; // its first red pixel
//! std::fs::write(&file, &bytes)?;
//! let set = load_cifar(&[file], &Selection::First(2))?;
//! assert_eq!((set.len(), set.shape), (2, (3, 32, 32)));
//! assert_eq!(set.pixels[0], 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use sha2::{Digest, Sha256};

use crate::error::{io_err, DataError, Result};
use crate::image_set::{hex, ImageSet, Selection};

fn format_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a file, transparently un-gzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(io_err(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format_err(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// An idx file: dimensions and the raw unsigned-byte payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// Sizes of each dimension (e.g. `[10000, 28, 28]`).
    pub dims: Vec<usize>,
    /// `product(dims)` bytes.
    pub data: Vec<u8>,
}

/// Parses an idx file of unsigned bytes (type code 0x08), as MNIST ships them.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(format_err(path, "not an idx file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(format_err(
            path,
            format!(
                "idx element type 0x{:02x} unsupported (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(format_err(path, "truncated idx header"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let want: usize = dims.iter().product();
    let have = bytes.len() - header;
    if have != want {
        return Err(format_err(
            path,
            format!("idx header announces {dims:?} = {want} bytes of data but the file holds {have}; the file is truncated or corrupt"),
        ));
    }
    Ok(Idx {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// MNIST images and labels from a pair of idx files, selecting before scaling to `[0, 1]`.
pub fn load_mnist(images: &Path, labels: &Path, sel: &Selection) -> Result<ImageSet> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(format_err(
            images,
            format!(
                "expected 3 dimensions (n, rows, cols), found {:?}",
                img.dims
            ),
        ));
    }
    if lab.dims.len() != 1 || lab.dims[0] != img.dims[0] {
        return Err(format_err(
            labels,
            format!(
                "{:?} labels for {} images in {}",
                lab.dims,
                img.dims[0],
                images.display()
            ),
        ));
    }
    let (h, w) = (img.dims[1], img.dims[2]);
    let per = h * w;
    let labels: Vec<u32> = lab.data.iter().map(|&b| b as u32).collect();
    let index = ImageSet {
        pixels: Vec::new(),
        shape: (1, h, w),
        labels: labels.clone(),
        names: Vec::new(),
        sha256: String::new(),
        source: images.display().to_string(),
        positions: Vec::new(),
    };
    let chosen = index.indices(sel)?;
    let mut hasher = Sha256::new();
    let mut pixels = Vec::with_capacity(chosen.len() * per);
    for &i in &chosen {
        let rec = &img.data[i * per..(i + 1) * per];
        hasher.update(rec);
        hasher.update([lab.data[i]]);
        pixels.extend(rec.iter().map(|&b| b as f32 / 255.0));
    }
    Ok(ImageSet {
        pixels,
        shape: (1, h, w),
        labels: chosen.iter().map(|&i| labels[i]).collect(),
        names: chosen
            .iter()
            .map(|i| format!("{}#{i}", file_name(images)))
            .collect(),
        sha256: hex(&hasher.finalize()),
        source: images.display().to_string(),
        positions: chosen,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Bytes of one CIFAR-10 record: 1 label byte + 1024 R + 1024 G + 1024 B.
pub const CIFAR_RECORD: usize = 3073;

/// CIFAR-10 images from binary record files read in the given order (e.g. `data_batch_1.bin`
/// .. `data_batch_5.bin`, or the subset files), selecting before scaling to `[0, 1]`.
pub fn load_cifar(files: &[PathBuf], sel: &Selection) -> Result<ImageSet> {
    let mut records: Vec<u8> = Vec::new();
    let mut origin: Vec<(usize, usize)> = Vec::new(); // (file index, record index in file)
    for (fi, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
            return Err(format_err(
                path,
                format!(
                    "{} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records; the file is truncated or not in the binary version",
                    bytes.len()
                ),
            ));
        }
        for r in 0..bytes.len() / CIFAR_RECORD {
            let label = bytes[r * CIFAR_RECORD];
            if label > 9 {
                return Err(format_err(
                    path,
                    format!("record {r} has label {label}; CIFAR-10 labels are 0..9"),
                ));
            }
            origin.push((fi, r));
        }
        records.extend_from_slice(&bytes);
    }
    let labels: Vec<u32> = (0..origin.len())
        .map(|i| records[i * CIFAR_RECORD] as u32)
        .collect();
    let source = files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let index = ImageSet {
        pixels: Vec::new(),
        shape: (3, 32, 32),
        labels: labels.clone(),
        names: Vec::new(),
        sha256: String::new(),
        source: source.clone(),
        positions: Vec::new(),
    };
    let chosen = index.indices(sel)?;
    let mut hasher = Sha256::new();
    let mut pixels = Vec::with_capacity(chosen.len() * 3072);
    for &i in &chosen {
        let rec = &records[i * CIFAR_RECORD..(i + 1) * CIFAR_RECORD];
        hasher.update(rec);
        pixels.extend(rec[1..].iter().map(|&b| b as f32 / 255.0));
    }
    Ok(ImageSet {
        pixels,
        shape: (3, 32, 32),
        labels: chosen.iter().map(|&i| labels[i]).collect(),
        names: chosen
            .iter()
            .map(|&i| format!("{}#{}", file_name(&files[origin[i].0]), origin[i].1))
            .collect(),
        sha256: hex(&hasher.finalize()),
        source,
        positions: chosen,
    })
}

/// How decoded photos are brought to a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// The image must already be `side x side`; anything else is an error naming the file.
    Exact(u32),
    /// Shorter side resized to `side` (bilinear), then the centre `side x side` crop (ImageNet).
    ShorterSideCrop(u32),
}

/// Decodes one JPEG/PNG to channel-major RGB `[0, 1]` values of `side x side`.
pub fn decode_rgb(name: &Path, bytes: &[u8], resize: Resize) -> Result<Vec<f32>> {
    let img = image::load_from_memory(bytes).map_err(|e| {
        format_err(
            name,
            format!("not a readable image ({e}); remove it from the folder"),
        )
    })?;
    let rgb = match resize {
        Resize::Exact(side) => {
            if img.width() != side || img.height() != side {
                return Err(format_err(
                    name,
                    format!(
                        "image is {}x{}, expected {side}x{side}",
                        img.width(),
                        img.height()
                    ),
                ));
            }
            img.to_rgb8()
        }
        Resize::ShorterSideCrop(side) => {
            let (w, h) = (img.width(), img.height());
            let scale = side as f64 / w.min(h) as f64;
            let (nw, nh) = (
                ((w as f64 * scale).round() as u32).max(side),
                ((h as f64 * scale).round() as u32).max(side),
            );
            let resized = img.to_rgb8();
            let resized = image::imageops::resize(&resized, nw, nh, FilterType::Triangle);
            let (x0, y0) = ((nw - side) / 2, (nh - side) / 2);
            image::imageops::crop_imm(&resized, x0, y0, side, side).to_image()
        }
    };
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * w * h + i] = p[c] as f32 / 255.0;
        }
    }
    Ok(out)
}

/// One encoded image with its label, before decoding.
#[derive(Debug, Clone)]
pub struct EncodedImage {
    /// Path (on disk or inside an archive), for errors and names.
    pub path: PathBuf,
    /// Class index.
    pub label: u32,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

/// Decodes the selected encoded images; the hash covers exactly their file bytes, in order.
pub fn decode_selected(
    items: &[EncodedImage],
    sel: &Selection,
    resize: Resize,
    source: &str,
) -> Result<ImageSet> {
    let side = match resize {
        Resize::Exact(s) | Resize::ShorterSideCrop(s) => s as usize,
    };
    let index = ImageSet {
        pixels: Vec::new(),
        shape: (3, side, side),
        labels: items.iter().map(|e| e.label).collect(),
        names: Vec::new(),
        sha256: String::new(),
        source: source.to_string(),
        positions: Vec::new(),
    };
    let chosen = index.indices(sel)?;
    let mut hasher = Sha256::new();
    let mut pixels = Vec::with_capacity(chosen.len() * 3 * side * side);
    for &i in &chosen {
        hasher.update(&items[i].bytes);
        pixels.extend(decode_rgb(&items[i].path, &items[i].bytes, resize)?);
    }
    Ok(ImageSet {
        pixels,
        shape: (3, side, side),
        labels: chosen.iter().map(|&i| items[i].label).collect(),
        names: chosen.iter().map(|&i| file_name(&items[i].path)).collect(),
        sha256: hex(&hasher.finalize()),
        source: source.to_string(),
        positions: chosen,
    })
}

/// Sort key putting `<wnid>_<k>.JPEG` in numeric order of `k`.
fn numeric_key(name: &str) -> (String, u64, String) {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    match stem
        .rsplit_once('_')
        .and_then(|(p, k)| k.parse::<u64>().ok().map(|k| (p, k)))
    {
        Some((p, k)) => (p.to_string(), k, name.to_string()),
        None => (stem.to_string(), 0, name.to_string()),
    }
}

fn wnids_from(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Tiny ImageNet training images from the official folder layout `root/wnids.txt` and
/// `root/train/<wnid>/images/<wnid>_<k>.JPEG`; labels follow the order of `wnids.txt`, images
/// within a class follow `k`. Classes listed in `wnids.txt` but absent are skipped (partial
/// copies such as a few classes are fine); a class folder holding a non-image file is an error.
pub fn tiny_imagenet_folder(root: &Path) -> Result<Vec<EncodedImage>> {
    let wnids_path = root.join("wnids.txt");
    let text = std::fs::read_to_string(&wnids_path).map_err(io_err(&wnids_path))?;
    let mut items = Vec::new();
    for (label, wnid) in wnids_from(&text).iter().enumerate() {
        let dir = root.join("train").join(wnid).join("images");
        if !dir.is_dir() {
            continue;
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()
            .map_err(io_err(&dir))?;
        names.sort_by_key(|n| numeric_key(n));
        for name in names {
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            items.push(EncodedImage {
                path,
                label: label as u32,
                bytes,
            });
        }
    }
    if items.is_empty() {
        return Err(DataError::Missing {
            path: root.join("train"),
            reason:
                "no class folder of wnids.txt holds images; expected train/<wnid>/images/*.JPEG"
                    .into(),
        });
    }
    Ok(items)
}

/// Tiny ImageNet training images read straight from the official `tiny-imagenet-200.zip`.
pub fn tiny_imagenet_zip(zip_path: &Path) -> Result<Vec<EncodedImage>> {
    let file = std::fs::File::open(zip_path).map_err(io_err(zip_path))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| format_err(zip_path, format!("not a readable zip archive: {e}")))?;
    let zerr = |e: zip::result::ZipError| format_err(zip_path, format!("corrupt zip entry: {e}"));
    let mut wnids_text = String::new();
    archive
        .by_name("tiny-imagenet-200/wnids.txt")
        .map_err(|_| {
            format_err(
                zip_path,
                "no tiny-imagenet-200/wnids.txt inside; is this the official archive?",
            )
        })?
        .read_to_string(&mut wnids_text)
        .map_err(io_err(zip_path))?;
    let wnids = wnids_from(&wnids_text);
    let mut entries: Vec<(u32, (String, u64, String), String)> = Vec::new();
    for i in 0..archive.len() {
        let name = archive.by_index(i).map_err(zerr)?.name().to_string();
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() == 5 && parts[1] == "train" && parts[3] == "images" && !parts[4].is_empty() {
            if let Some(label) = wnids.iter().position(|w| w == parts[2]) {
                entries.push((label as u32, numeric_key(parts[4]), name));
            }
        }
    }
    entries.sort();
    let mut items = Vec::with_capacity(entries.len());
    for (label, _, name) in entries {
        let mut bytes = Vec::new();
        archive
            .by_name(&name)
            .map_err(zerr)?
            .read_to_end(&mut bytes)
            .map_err(io_err(zip_path))?;
        items.push(EncodedImage {
            path: zip_path.join(&name),
            label,
            bytes,
        });
    }
    Ok(items)
}

/// A folder of photos named `<wnid>_<anything>.<ext>` (ImageNet's own files or the sample in the
/// shared data folder); sorted by file name, labels by the sorted order of the distinct wnids.
pub fn photo_folder(dir: &Path) -> Result<Vec<EncodedImage>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            reason: "folder is empty; put ImageNet JPEG files (<wnid>_<name>.JPEG) there".into(),
        });
    }
    let wnid = |n: &str| n.split(['_', '.']).next().unwrap_or("").to_string();
    let mut classes: Vec<String> = names.iter().map(|n| wnid(n)).collect();
    classes.dedup();
    let mut items = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let label = classes.iter().position(|c| *c == wnid(&name)).unwrap_or(0) as u32;
        items.push(EncodedImage { path, label, bytes });
    }
    Ok(items)
}

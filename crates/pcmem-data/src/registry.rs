//! The datasets pcmem knows: where their official files come from, their checksums, where they
//! are looked for on disk, and how they are loaded.
//!
//! A dataset is looked for first in the data directory (`--data-dir` or `PCMEM_DATA_DIR`), in
//! its official layout (full or partial, e.g. `../shared/data`), then in the download cache
//! (`PCMEM_CACHE_DIR`, default `$XDG_CACHE_HOME/pcmem` or `~/.cache/pcmem`).
//!
//! ```
//! use pcmem_data::DatasetId;
//! let tiny = DatasetId::from_name("tiny-imagenet")?;
//! assert_eq!(tiny.shape(), (3, 64, 64));
//! assert!(DatasetId::from_name("cifar100").is_err()); // the error lists the known names
//! # Ok::<(), pcmem_data::DataError>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::download::{self, Expected};
use crate::error::{io_err, DataError, Result};
use crate::formats::{self, Resize};
use crate::image_set::{ImageSet, Selection};

/// A dataset of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetId {
    /// MNIST digits, 28x28 grey.
    Mnist,
    /// CIFAR-10, 32x32 RGB.
    Cifar10,
    /// Tiny ImageNet, 64x64 RGB.
    TinyImagenet,
    /// ImageNet photos, shorter side resized to 224 and centre-cropped to 224x224.
    Imagenet,
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training images (the paper stores training images).
    #[default]
    Train,
    /// Test images.
    Test,
}

/// One official file of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archive {
    /// File name, also its name in the cache.
    pub file: &'static str,
    /// Official download address.
    pub url: &'static str,
    /// Published size in bytes.
    pub bytes: u64,
    /// Published MD5.
    pub md5: &'static str,
    /// Published SHA-256, where known.
    pub sha256: Option<&'static str>,
}

impl Archive {
    /// What the file must be.
    pub fn expected(&self) -> Expected {
        Expected {
            bytes: Some(self.bytes),
            md5: Some(self.md5.to_string()),
            sha256: self.sha256.map(String::from),
        }
    }

    /// Download address, under `mirror` (a base URL) when given.
    pub fn url_with(&self, mirror: Option<&str>) -> String {
        match mirror {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), self.file),
            None => self.url.to_string(),
        }
    }
}

const MNIST: [Archive; 4] = [
    Archive {
        file: "train-images-idx3-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        bytes: 9_912_422,
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        sha256: Some("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    },
    Archive {
        file: "train-labels-idx1-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        bytes: 28_881,
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
        sha256: Some("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    },
    Archive {
        file: "t10k-images-idx3-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        bytes: 1_648_877,
        md5: "9fb629c4189551a2d022fa330f9573f3",
        sha256: Some("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    },
    Archive {
        file: "t10k-labels-idx1-ubyte.gz",
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        bytes: 4_542,
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
        sha256: Some("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
];

const CIFAR10: [Archive; 1] = [Archive {
    file: "cifar-10-binary.tar.gz",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    bytes: 170_052_171,
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    sha256: None,
}];

const TINY: [Archive; 1] = [Archive {
    file: "tiny-imagenet-200.zip",
    url: "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
    bytes: 248_100_043,
    md5: "90528d7ca1a48142e341f4ef8d21d0de",
    sha256: None,
}];

impl DatasetId {
    /// Every dataset.
    pub const ALL: [DatasetId; 4] = [
        DatasetId::Mnist,
        DatasetId::Cifar10,
        DatasetId::TinyImagenet,
        DatasetId::Imagenet,
    ];

    /// The name used on the command line and in grids.
    pub fn name(self) -> &'static str {
        match self {
            DatasetId::Mnist => "mnist",
            DatasetId::Cifar10 => "cifar10",
            DatasetId::TinyImagenet => "tiny-imagenet",
            DatasetId::Imagenet => "imagenet",
        }
    }

    /// Parses a name; the error lists the known names.
    pub fn from_name(name: &str) -> Result<Self> {
        DatasetId::ALL
            .into_iter()
            .find(|d| d.name() == name.to_ascii_lowercase())
            .ok_or_else(|| DataError::UnknownDataset {
                name: name.to_string(),
                known: DatasetId::ALL.map(|d| d.name()).join(", "),
            })
    }

    /// Official files (none for ImageNet, which has no free download).
    pub fn archives(self) -> &'static [Archive] {
        match self {
            DatasetId::Mnist => &MNIST,
            DatasetId::Cifar10 => &CIFAR10,
            DatasetId::TinyImagenet => &TINY,
            DatasetId::Imagenet => &[],
        }
    }

    /// Image shape `(channels, height, width)` as loaded.
    pub fn shape(self) -> (usize, usize, usize) {
        match self {
            DatasetId::Mnist => (1, 28, 28),
            DatasetId::Cifar10 => (3, 32, 32),
            DatasetId::TinyImagenet => (3, 64, 64),
            DatasetId::Imagenet => (3, 224, 224),
        }
    }
}

/// Where data is looked for and downloaded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirs {
    /// Folder with datasets in their official layouts, if any.
    pub data_dir: Option<PathBuf>,
    /// Download cache.
    pub cache_dir: PathBuf,
    /// Base URL replacing the official hosts, if any.
    pub mirror: Option<String>,
}

/// `PCMEM_DATA_DIR` (`None` when unset or empty), a relative path taken from `base` instead of
/// the working directory. Tests pass the workspace root: cargo runs each test binary in its
/// crate's folder, while the README's test command sets the variable relative to the workspace.
pub fn data_dir_env_from(base: &Path) -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("PCMEM_DATA_DIR").filter(|v| !v.is_empty())?);
    Some(if dir.is_relative() {
        base.join(dir)
    } else {
        dir
    })
}

impl DataDirs {
    /// From an explicit data directory (wins) or `PCMEM_DATA_DIR`, `PCMEM_CACHE_DIR` (default
    /// `$XDG_CACHE_HOME/pcmem` or `$HOME/.cache/pcmem`) and `PCMEM_MIRROR`.
    pub fn from_env(data_dir: Option<PathBuf>) -> Self {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let cache_dir = env("PCMEM_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                env("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from(".cache"))
                    .join("pcmem")
            });
        Self {
            data_dir: data_dir.or_else(|| env("PCMEM_DATA_DIR").map(PathBuf::from)),
            cache_dir,
            mirror: env("PCMEM_MIRROR").map(|m| m.to_string_lossy().into_owned()),
        }
    }

    fn roots(&self) -> Vec<PathBuf> {
        self.data_dir
            .iter()
            .cloned()
            .chain([self.cache_dir.clone()])
            .collect()
    }
}

/// Where a dataset was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// MNIST idx files (images, labels).
    Idx(PathBuf, PathBuf),
    /// CIFAR-10 record files in reading order.
    Records(Vec<PathBuf>),
    /// A Tiny ImageNet folder (holding `wnids.txt` and `train/`).
    TinyFolder(PathBuf),
    /// The official Tiny ImageNet zip.
    TinyZip(PathBuf),
    /// A folder of photos.
    Photos(PathBuf),
}

fn first_existing(cands: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    cands.into_iter().find(|p| p.exists())
}

fn bin_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with(prefix) && n.ends_with(".bin")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Finds a dataset split on disk; the error says what was looked for, where, and how to get it.
pub fn locate(id: DatasetId, split: Split, dirs: &DataDirs) -> Result<Located> {
    let roots = dirs.roots();
    let found = match id {
        DatasetId::Mnist => {
            let stem = if split == Split::Train {
                "train"
            } else {
                "t10k"
            };
            roots.iter().find_map(|r| {
                [r.join("mnist"), r.clone()].into_iter().find_map(|d| {
                    let img = first_existing([
                        d.join(format!("{stem}-images-idx3-ubyte.gz")),
                        d.join(format!("{stem}-images-idx3-ubyte")),
                    ])?;
                    let lab = first_existing([
                        d.join(format!("{stem}-labels-idx1-ubyte.gz")),
                        d.join(format!("{stem}-labels-idx1-ubyte")),
                    ])?;
                    Some(Located::Idx(img, lab))
                })
            })
        }
        DatasetId::Cifar10 => {
            let mut found = None;
            for r in &roots {
                let official = r.join("cifar-10-batches-bin");
                if official.is_dir() {
                    let files: Vec<PathBuf> = match split {
                        Split::Train => (1..=5)
                            .map(|i| official.join(format!("data_batch_{i}.bin")))
                            .filter(|p| p.exists())
                            .collect(),
                        Split::Test => [official.join("test_batch.bin")]
                            .into_iter()
                            .filter(|p| p.exists())
                            .collect(),
                    };
                    if !files.is_empty() {
                        found = Some(Located::Records(files));
                        break;
                    }
                }
                let subset = r.join("cifar-10-subset");
                if subset.is_dir() {
                    let files = bin_files(
                        &subset,
                        if split == Split::Train {
                            "train"
                        } else {
                            "test"
                        },
                    )?;
                    if !files.is_empty() {
                        found = Some(Located::Records(files));
                        break;
                    }
                }
            }
            found
        }
        DatasetId::TinyImagenet => {
            if split == Split::Test {
                return Err(DataError::Invalid(
                    "tiny-imagenet: only the train split is supported (the paper stores training images)".into(),
                ));
            }
            roots.iter().find_map(|r| {
                let folder = r.join("tiny-imagenet-200");
                if folder.join("wnids.txt").exists() {
                    Some(Located::TinyFolder(folder))
                } else {
                    let zip = r.join("tiny-imagenet-200.zip");
                    zip.exists().then_some(Located::TinyZip(zip))
                }
            })
        }
        DatasetId::Imagenet => roots.iter().find_map(|r| {
            [r.join("imagenet-sample"), r.join("imagenet")]
                .into_iter()
                .find(|d| d.is_dir())
                .map(Located::Photos)
        }),
    };
    found.ok_or_else(|| {
        let looked = roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(" and ");
        let how = match id.archives() {
            [] => "ImageNet has no free download: put your own JPEGs (<wnid>_<name>.JPEG) in <data-dir>/imagenet/".to_string(),
            files => format!(
                "run `pcmem data fetch {}` (downloads {}) or put the official files in <data-dir>",
                id.name(),
                files.iter().map(|a| a.url).collect::<Vec<_>>().join(", ")
            ),
        };
        DataError::Missing {
            path: dirs.data_dir.clone().unwrap_or_else(|| dirs.cache_dir.clone()),
            reason: format!("{} ({split:?}) not found under {looked}; {how}", id.name()),
        }
    })
}

/// Loads the selected images of a dataset split, from wherever [`locate`] finds it.
pub fn load(id: DatasetId, split: Split, sel: &Selection, dirs: &DataDirs) -> Result<ImageSet> {
    let mut set = match locate(id, split, dirs)? {
        Located::Idx(img, lab) => formats::load_mnist(&img, &lab, sel)?,
        Located::Records(files) => formats::load_cifar(&files, sel)?,
        Located::TinyFolder(root) => {
            let items = formats::tiny_imagenet_folder(&root)?;
            formats::decode_selected(&items, sel, Resize::Exact(64), &root.display().to_string())?
        }
        Located::TinyZip(zip) => {
            let items = formats::tiny_imagenet_zip(&zip)?;
            formats::decode_selected(&items, sel, Resize::Exact(64), &zip.display().to_string())?
        }
        Located::Photos(dir) => {
            let items = formats::photo_folder(&dir)?;
            formats::decode_selected(
                &items,
                sel,
                Resize::ShorterSideCrop(224),
                &dir.display().to_string(),
            )?
        }
    };
    set.source = format!("{} {:?}: {}", id.name(), split, set.source);
    Ok(set)
}

/// Downloads a dataset's official files into the cache (verified; CIFAR-10 also extracted).
pub fn fetch(id: DatasetId, dirs: &DataDirs, progress: bool) -> Result<Vec<PathBuf>> {
    fetch_archives(id, id.archives(), dirs, progress)
}

impl DatasetId {
    /// The official files that hold `split` (MNIST keeps each split in its own files; the
    /// other datasets ship both splits in one archive). Empty for ImageNet.
    pub fn archives_for(self, split: Split) -> Vec<Archive> {
        let test = |a: &Archive| a.file.starts_with("t10k");
        self.archives()
            .iter()
            .filter(|a| self != DatasetId::Mnist || test(a) == (split == Split::Test))
            .copied()
            .collect()
    }
}

/// Downloads only the official files that hold `split` ([`DatasetId::archives_for`]) into the
/// cache, verified as [`fetch`] does.
pub fn fetch_split(
    id: DatasetId,
    split: Split,
    dirs: &DataDirs,
    progress: bool,
) -> Result<Vec<PathBuf>> {
    fetch_archives(id, &id.archives_for(split), dirs, progress)
}

fn fetch_archives(
    id: DatasetId,
    archives: &[Archive],
    dirs: &DataDirs,
    progress: bool,
) -> Result<Vec<PathBuf>> {
    if archives.is_empty() {
        return Err(DataError::Invalid(format!(
            "{} has no free download; put your own images in <data-dir>/imagenet/",
            id.name()
        )));
    }
    let dir = match id {
        DatasetId::Mnist => dirs.cache_dir.join("mnist"),
        _ => dirs.cache_dir.clone(),
    };
    let mut out = Vec::new();
    for a in archives {
        let dest = dir.join(a.file);
        download::fetch(
            &a.url_with(dirs.mirror.as_deref()),
            &dest,
            &a.expected(),
            progress,
        )?;
        if id == DatasetId::Cifar10
            && !dirs
                .cache_dir
                .join("cifar-10-batches-bin/test_batch.bin")
                .exists()
        {
            extract_cifar_archive(&dest, &dirs.cache_dir)?;
        }
        out.push(dest);
    }
    Ok(out)
}

/// Extracts the official `cifar-10-binary.tar.gz` so that `into/cifar-10-batches-bin/` holds
/// the record files; extraction happens in a temporary folder renamed at the end.
pub fn extract_cifar_archive(archive: &Path, into: &Path) -> Result<()> {
    let f = std::fs::File::open(archive).map_err(io_err(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let tmp = into.join(format!(".extract-{}", std::process::id()));
    tar.unpack(&tmp).map_err(|e| DataError::Format {
        path: archive.to_path_buf(),
        reason: format!("cannot extract: {e}"),
    })?;
    let from = tmp.join("cifar-10-batches-bin");
    if !from.is_dir() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(DataError::Format {
            path: archive.to_path_buf(),
            reason: "no cifar-10-batches-bin/ inside; is this the binary version of CIFAR-10?"
                .into(),
        });
    }
    let to = into.join("cifar-10-batches-bin");
    std::fs::rename(&from, &to).map_err(io_err(&to))?;
    std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    Ok(())
}

/// The state of one file checked by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The file.
    pub path: PathBuf,
    /// `None` if it matched, else what was wrong.
    pub problem: Option<String>,
}

/// Verifies the official archives present in the cache against their published checksums, and
/// every file listed in a `SHA256SUMS` file at the root of the data directory.
pub fn verify(id: Option<DatasetId>, dirs: &DataDirs) -> Result<Vec<FileCheck>> {
    let mut checks = Vec::new();
    for d in DatasetId::ALL
        .into_iter()
        .filter(|d| id.is_none_or(|i| i == *d))
    {
        for a in d.archives() {
            let dir = if d == DatasetId::Mnist {
                dirs.cache_dir.join("mnist")
            } else {
                dirs.cache_dir.clone()
            };
            let path = dir.join(a.file);
            if path.exists() {
                let got = download::digest_file(&path)?;
                let problem = download::check(&path, &got, &a.expected())
                    .err()
                    .map(|e| e.to_string());
                checks.push(FileCheck { path, problem });
            }
        }
    }
    if let Some(root) = &dirs.data_dir {
        let sums = root.join("SHA256SUMS");
        if sums.exists() {
            let text = std::fs::read_to_string(&sums).map_err(io_err(&sums))?;
            let prefix = id.map(|d| match d {
                DatasetId::Mnist => "mnist",
                DatasetId::Cifar10 => "cifar-10",
                DatasetId::TinyImagenet => "tiny-imagenet",
                DatasetId::Imagenet => "imagenet",
            });
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Some((hash, name)) = line.split_once(char::is_whitespace) else {
                    continue;
                };
                let rel = name.trim().trim_start_matches('*').trim_start_matches("./");
                if prefix.is_some_and(|p| !rel.starts_with(p)) {
                    continue;
                }
                let path = root.join(rel);
                let problem = if !path.exists() {
                    Some("listed in SHA256SUMS but missing".to_string())
                } else {
                    let got = download::digest_file(&path)?;
                    (!got.sha256.eq_ignore_ascii_case(hash))
                        .then(|| format!("sha256 {} differs from SHA256SUMS {hash}", got.sha256))
                };
                checks.push(FileCheck { path, problem });
            }
        }
    }
    Ok(checks)
}

//! # pcmem-data: the paper's datasets, read from their official formats
//!
//! MNIST (idx), CIFAR-10 (binary records), Tiny ImageNet (folder layout or the official zip) and
//! ImageNet (a user-supplied folder of photos, shorter side resized to 224 and centre-cropped).
//! Files are looked for in a data directory and a download cache; downloads are checksummed
//! before use. Subsets are deterministic and every load reports the SHA-256 of exactly the
//! bytes used. [`transforms`] holds noise, masks and binarisation.
//!
//! ```no_run
//! use pcmem_data::{load, DataDirs, DatasetId, Selection, Split};
//! let dirs = DataDirs::from_env(Some("../shared/data".into()));
//! let set = load(DatasetId::Cifar10, Split::Train, &Selection::First(100), &dirs)?;
//! assert_eq!((set.len(), set.dim()), (100, 3072));
//! println!("{} images, sha256 {}", set.len(), set.sha256);
//! # Ok::<(), pcmem_data::DataError>(())
//! ```

pub mod development;
pub mod download;
pub mod error;
pub mod folder;
pub mod formats;
pub mod image_set;
pub mod registry;
pub mod transforms;

pub use error::{DataError, Result};
pub use image_set::{sha256_hex, ImageSet, Selection};
pub use registry::{
    data_dir_env_from, extract_cifar_archive, fetch, fetch_split, load, locate, verify, Archive,
    DataDirs, DatasetId, FileCheck, Located, Split,
};

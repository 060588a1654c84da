//! The declared development images. A setting chosen by looking at recall results is chosen on
//! these, and no cell that judges a claim of the paper stores any of them:
//!
//! | dataset | split | development images |
//! |---|---|---|
//! | CIFAR-10 | train | positions 2000-3999 |
//! | Tiny ImageNet | train | classes 2 and 3 of the data directory (`wnids.txt` order) |
//! | ImageNet | the photo folder | photos 50-99 (file-name order) |
//! | MNIST | test | digits 5000-9999 |
//!
//! ```
//! use pcmem_data::development::{development_in, Development};
//! use pcmem_data::{DatasetId, Split};
//! let dev = Development::of(DatasetId::Cifar10);
//! assert_eq!(dev.split, Split::Train);
//! // Images at positions 1998..2002 with label 0: two of them are development images.
//! let hits = development_in(DatasetId::Cifar10, Split::Train, &[1998, 1999, 2000, 2001], &[0; 4]);
//! assert_eq!(hits, vec![2000, 2001]);
//! ```

use crate::registry::{DatasetId, Split};

/// Which images of a dataset are the development images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Development {
    /// The split they belong to.
    pub split: Split,
    /// Positions `from..=to` in the split's own order, if declared by position.
    pub positions: Option<(usize, usize)>,
    /// Class labels, if declared by class.
    pub classes: Vec<u32>,
}

impl Development {
    /// The declaration for `id` (see the module docs).
    pub fn of(id: DatasetId) -> Self {
        match id {
            DatasetId::Cifar10 => Self::positions(Split::Train, 2000, 3999),
            DatasetId::TinyImagenet => Self {
                split: Split::Train,
                positions: None,
                classes: vec![2, 3],
            },
            DatasetId::Imagenet => Self::positions(Split::Train, 50, 99),
            DatasetId::Mnist => Self::positions(Split::Test, 5000, 9999),
        }
    }

    fn positions(split: Split, from: usize, to: usize) -> Self {
        Self {
            split,
            positions: Some((from, to)),
            classes: Vec::new(),
        }
    }

    /// Whether the image at `position` with `label` (of `split`) is a development image.
    pub fn contains(&self, split: Split, position: usize, label: u32) -> bool {
        split == self.split
            && (self
                .positions
                .is_some_and(|(a, b)| (a..=b).contains(&position))
                || self.classes.contains(&label))
    }

    /// The declaration in words, for messages.
    pub fn describe(&self) -> String {
        let split = format!("{:?}", self.split).to_lowercase();
        match self.positions {
            Some((a, b)) => format!("{split} images at positions {a}-{b}"),
            None => format!(
                "{split} images of classes {}",
                self.classes
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }
}

/// The positions, among `positions` (with their `labels`), of development images of `id`.
pub fn development_in(
    id: DatasetId,
    split: Split,
    positions: &[usize],
    labels: &[u32],
) -> Vec<usize> {
    let dev = Development::of(id);
    positions
        .iter()
        .zip(labels)
        .filter(|(&p, &l)| dev.contains(split, p, l))
        .map(|(&p, _)| p)
        .collect()
}

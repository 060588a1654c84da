//! The real data folder (`PCMEM_DATA_DIR`, `../shared/data` in CI) loads with the documented
//! counts and shapes and matches its SHA256SUMS. Skipped, with a message, when it is not set.

use pcmem_data::{load, verify, DataDirs, DatasetId, Selection, Split};

/// `PCMEM_DATA_DIR`, a relative path taken from the workspace root.
fn data_dir_env() -> Option<std::path::PathBuf> {
    pcmem_data::data_dir_env_from(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn dirs() -> Option<DataDirs> {
    let Some(d) = data_dir_env() else {
        eprintln!("PCMEM_DATA_DIR not set: skipping the real-data checks");
        return None;
    };
    let tmp = std::env::temp_dir().join("pcmem-empty-cache");
    Some(DataDirs {
        data_dir: Some(d),
        cache_dir: tmp,
        mirror: None,
    })
}

#[test]
fn real_folders_load_with_documented_counts_and_shapes() {
    let Some(d) = dirs() else { return };
    let mnist = load(DatasetId::Mnist, Split::Test, &Selection::All, &d).unwrap();
    assert_eq!((mnist.len(), mnist.shape), (10_000, (1, 28, 28)));
    assert_eq!(
        mnist.labels[..5],
        [7, 2, 1, 0, 4],
        "the official test set starts 7 2 1 0 4"
    );
    let train = load(DatasetId::Cifar10, Split::Train, &Selection::All, &d).unwrap();
    assert_eq!((train.len(), train.shape), (4000, (3, 32, 32)));
    assert_eq!(
        train.labels[..3],
        [6, 9, 9],
        "data_batch_1 starts frog, truck, truck"
    );
    let test = load(DatasetId::Cifar10, Split::Test, &Selection::First(1000), &d).unwrap();
    assert_eq!(test.len(), 1000);
    let goldfish = load(
        DatasetId::TinyImagenet,
        Split::Train,
        &Selection::Class { label: 0, n: 50 },
        &d,
    )
    .unwrap();
    assert_eq!((goldfish.len(), goldfish.shape), (50, (3, 64, 64)));
    assert!(goldfish.names.iter().all(|n| n.starts_with("n01443537_")));
    let all_tiny = load(DatasetId::TinyImagenet, Split::Train, &Selection::All, &d).unwrap();
    assert_eq!(all_tiny.len(), 2000);
    let imagenet = load(DatasetId::Imagenet, Split::Train, &Selection::First(25), &d).unwrap();
    assert_eq!((imagenet.len(), imagenet.shape), (25, (3, 224, 224)));
    for set in [&mnist, &train, &goldfish, &imagenet] {
        assert!(set.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(set.sha256.len(), 64);
    }
}

#[test]
fn real_folder_matches_its_sha256sums() {
    let Some(d) = dirs() else { return };
    let checks = verify(Some(DatasetId::Cifar10), &d).unwrap();
    assert_eq!(checks.len(), 2);
    let bad: Vec<_> = checks.iter().filter(|c| c.problem.is_some()).collect();
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn registry_checksums_match_the_real_mnist_test_files() {
    let Some(d) = dirs() else { return };
    let root = d.data_dir.unwrap().join("mnist");
    for a in DatasetId::Mnist
        .archives()
        .iter()
        .filter(|a| a.file.starts_with("t10k"))
    {
        let path = root.join(a.file);
        let got = pcmem_data::download::digest_file(&path).unwrap();
        pcmem_data::download::check(&path, &got, &a.expected()).unwrap();
    }
}

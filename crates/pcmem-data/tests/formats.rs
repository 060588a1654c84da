//! Each official format read from fixtures generated here, and each kind of bad input rejected
//! with an error that names the file.

use std::io::Write;
use std::path::Path;

use pcmem_data::formats::{self, Resize};
use pcmem_data::{load, sha256_hex, DataDirs, DataError, DatasetId, Selection, Split};

fn dirs(data: &Path, cache: &Path) -> DataDirs {
    DataDirs {
        data_dir: Some(data.to_path_buf()),
        cache_dir: cache.to_path_buf(),
        mirror: None,
    }
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 4) as u8 ^ seed, (y * 4) as u8, seed])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

#[test]
fn mnist_idx_plain_and_gzipped_with_selection_and_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = tmp.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let pixels: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 4) as u8).collect();
    std::fs::write(
        mnist.join("t10k-images-idx3-ubyte.gz"),
        gz(&idx_bytes(&[5, 4, 3], &pixels)),
    )
    .unwrap();
    std::fs::write(
        mnist.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[5], &[3, 1, 3, 0, 3]),
    )
    .unwrap();
    let d = dirs(tmp.path(), &tmp.path().join("cache"));
    let set = load(
        DatasetId::Mnist,
        Split::Test,
        &Selection::Class { label: 3, n: 2 },
        &d,
    )
    .unwrap();
    assert_eq!(set.shape, (1, 4, 3));
    assert_eq!(set.labels, vec![3, 3]);
    assert_eq!(
        set.row(1)[0],
        pixels[24] as f32 / 255.0,
        "second image of class 3 is record 2"
    );
    let expect = sha256_hex([&pixels[0..12], &[3u8][..], &pixels[24..36], &[3u8][..]]);
    assert_eq!(set.sha256, expect, "hash covers exactly the records used");
    // Truncated image file: the error names it.
    std::fs::write(
        mnist.join("t10k-images-idx3-ubyte.gz"),
        gz(&idx_bytes(&[5, 4, 3], &pixels[..50])),
    )
    .unwrap();
    let err = load(DatasetId::Mnist, Split::Test, &Selection::All, &d).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err}");
    assert!(
        err.to_string().contains("t10k-images-idx3-ubyte.gz")
            && err.to_string().contains("truncated"),
        "{err}"
    );
    // Corrupt gzip.
    std::fs::write(
        mnist.join("t10k-images-idx3-ubyte.gz"),
        [0x1f, 0x8b, 1, 2, 3],
    )
    .unwrap();
    let err = load(DatasetId::Mnist, Split::Test, &Selection::All, &d).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
    // Asking for more images than exist.
    std::fs::write(
        mnist.join("t10k-images-idx3-ubyte.gz"),
        gz(&idx_bytes(&[5, 4, 3], &pixels)),
    )
    .unwrap();
    let err = load(DatasetId::Mnist, Split::Test, &Selection::First(6), &d).unwrap_err();
    assert!(err.to_string().contains("only 5 available"), "{err}");
}

#[test]
fn cifar_records_official_and_subset_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut recs = Vec::new();
    for r in 0..4u8 {
        recs.push(r % 10);
        recs.extend((0..3072).map(|i| ((i as u32 + r as u32 * 7) % 256) as u8));
    }
    let official = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&official).unwrap();
    std::fs::write(official.join("data_batch_1.bin"), &recs[..2 * 3073]).unwrap();
    std::fs::write(official.join("data_batch_2.bin"), &recs[2 * 3073..]).unwrap();
    let d = dirs(tmp.path(), &tmp.path().join("cache"));
    let set = load(DatasetId::Cifar10, Split::Train, &Selection::All, &d).unwrap();
    assert_eq!((set.len(), set.shape), (4, (3, 32, 32)));
    assert_eq!(set.labels, vec![0, 1, 2, 3]);
    assert_eq!(set.names[2], "data_batch_2.bin#0");
    // Record 3 holds (i + 21) % 256 at pixel i.
    assert_eq!(set.row(3)[1], 22.0 / 255.0);
    assert_eq!(set.sha256, sha256_hex([recs.as_slice()]));
    let rnd = load(
        DatasetId::Cifar10,
        Split::Train,
        &Selection::Random { n: 2, seed: 9 },
        &d,
    )
    .unwrap();
    let again = load(
        DatasetId::Cifar10,
        Split::Train,
        &Selection::Random { n: 2, seed: 9 },
        &d,
    )
    .unwrap();
    assert_eq!(rnd, again, "seeded random subsets are deterministic");
    // Truncated record file.
    std::fs::write(
        official.join("data_batch_2.bin"),
        &recs[2 * 3073..4 * 3073 - 10],
    )
    .unwrap();
    let err = load(DatasetId::Cifar10, Split::Train, &Selection::All, &d).unwrap_err();
    assert!(
        err.to_string().contains("data_batch_2.bin") && err.to_string().contains("3073"),
        "{err}"
    );
}

#[test]
fn tiny_imagenet_folder_and_zip_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tiny-imagenet-200");
    let wnids = ["n01443537", "n01629819"];
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("wnids.txt"), wnids.join("\n")).unwrap();
    let zip_path = tmp.path().join("zipped").join("tiny-imagenet-200.zip");
    std::fs::create_dir_all(zip_path.parent().unwrap()).unwrap();
    let mut zw = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zw.start_file("tiny-imagenet-200/wnids.txt", opts).unwrap();
    zw.write_all(wnids.join("\n").as_bytes()).unwrap();
    for (c, w) in wnids.iter().enumerate() {
        let dir = root.join("train").join(w).join("images");
        std::fs::create_dir_all(&dir).unwrap();
        for k in [0, 2, 10] {
            let bytes = jpeg(64, 64, (c * 50 + k) as u8);
            let name = format!("{w}_{k}.JPEG");
            std::fs::write(dir.join(&name), &bytes).unwrap();
            zw.start_file(format!("tiny-imagenet-200/train/{w}/images/{name}"), opts)
                .unwrap();
            zw.write_all(&bytes).unwrap();
        }
    }
    zw.finish().unwrap();
    let d = dirs(tmp.path(), &tmp.path().join("cache"));
    let set = load(
        DatasetId::TinyImagenet,
        Split::Train,
        &Selection::Class { label: 0, n: 3 },
        &d,
    )
    .unwrap();
    assert_eq!(set.shape, (3, 64, 64));
    assert_eq!(
        set.names,
        vec!["n01443537_0.JPEG", "n01443537_2.JPEG", "n01443537_10.JPEG"],
        "numeric order of k"
    );
    let dz = dirs(
        tmp.path().join("zipped").as_path(),
        &tmp.path().join("cache"),
    );
    let zset = load(
        DatasetId::TinyImagenet,
        Split::Train,
        &Selection::Class { label: 0, n: 3 },
        &dz,
    )
    .unwrap();
    assert_eq!(set.pixels, zset.pixels);
    assert_eq!(set.sha256, zset.sha256);
    // A non-image file and an image of the wrong size: errors naming the file.
    let bad = root.join("train/n01443537/images/n01443537_1.JPEG");
    std::fs::write(&bad, b"this is not a jpeg").unwrap();
    let err = load(DatasetId::TinyImagenet, Split::Train, &Selection::All, &d).unwrap_err();
    assert!(
        err.to_string().contains("n01443537_1.JPEG")
            && err.to_string().contains("not a readable image"),
        "{err}"
    );
    std::fs::write(&bad, jpeg(32, 64, 1)).unwrap();
    let err = load(DatasetId::TinyImagenet, Split::Train, &Selection::All, &d).unwrap_err();
    assert!(
        err.to_string().contains("n01443537_1.JPEG") && err.to_string().contains("32x64"),
        "{err}"
    );
}

#[test]
fn photo_folder_resizes_shorter_side_and_crops_centre() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imagenet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("n01440764_tench.JPEG"), jpeg(300, 240, 3)).unwrap();
    // A greyscale photo becomes RGB.
    let grey = image::GrayImage::from_fn(224, 400, |x, _| image::Luma([x as u8]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageLuma8(grey)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    std::fs::write(dir.join("n01443537_goldfish.png"), bytes).unwrap();
    let d = dirs(tmp.path(), &tmp.path().join("cache"));
    let set = load(DatasetId::Imagenet, Split::Train, &Selection::All, &d).unwrap();
    assert_eq!((set.len(), set.shape), (2, (3, 224, 224)));
    assert_eq!(set.labels, vec![0, 1]);
    let g = set.row(1);
    assert_eq!(g[100], g[224 * 224 + 100], "grey image has equal channels");
    // Empty folder.
    let empty = tmp.path().join("e");
    std::fs::create_dir_all(empty.join("imagenet")).unwrap();
    let err = load(
        DatasetId::Imagenet,
        Split::Train,
        &Selection::All,
        &dirs(&empty, &tmp.path().join("c")),
    )
    .unwrap_err();
    assert!(
        matches!(err, DataError::Missing { .. }) && err.to_string().contains("empty"),
        "{err}"
    );
    let err = formats::decode_rgb(Path::new("x.JPEG"), b"nope", Resize::Exact(8)).unwrap_err();
    assert!(err.to_string().contains("x.JPEG"));
}

#[test]
fn unknown_names_and_missing_data_explain_themselves() {
    let err = DatasetId::from_name("cifar100").unwrap_err();
    assert!(
        err.to_string().contains("cifar100") && err.to_string().contains("cifar10"),
        "{err}"
    );
    assert_eq!(
        DatasetId::from_name("Tiny-ImageNet").unwrap(),
        DatasetId::TinyImagenet
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = dirs(tmp.path(), &tmp.path().join("cache"));
    let err = load(DatasetId::Cifar10, Split::Train, &Selection::All, &d).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("pcmem data fetch cifar10") && msg.contains("cifar-10-binary.tar.gz"),
        "{msg}"
    );
}

#[test]
fn official_cifar_archive_layout_extracts_and_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut recs = Vec::new();
    for r in 0..3u8 {
        recs.push(r);
        recs.extend(std::iter::repeat_n(r * 20, 3072));
    }
    let archive = tmp.path().join("cifar-10-binary.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for name in ["data_batch_1.bin", "test_batch.bin"] {
        let mut header = tar::Header::new_gnu();
        header.set_size(recs.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}"),
            recs.as_slice(),
        )
        .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    pcmem_data::extract_cifar_archive(&archive, &cache).unwrap();
    let d = DataDirs {
        data_dir: None,
        cache_dir: cache.clone(),
        mirror: None,
    };
    let set = load(DatasetId::Cifar10, Split::Test, &Selection::All, &d).unwrap();
    assert_eq!(set.labels, vec![0, 1, 2]);
    assert_eq!(set.row(2)[5], 40.0 / 255.0);
    // A tarball without the expected folder is refused, naming it.
    let wrong = tmp.path().join("wrong.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&wrong).unwrap(),
        flate2::Compression::fast(),
    );
    let mut t = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_cksum();
    t.append_data(&mut header, "other/file", &b"x"[..]).unwrap();
    t.into_inner().unwrap().finish().unwrap();
    let err = pcmem_data::extract_cifar_archive(&wrong, &tmp.path().join("c2")).unwrap_err();
    assert!(err.to_string().contains("wrong.tar.gz"), "{err}");
}

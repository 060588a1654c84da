//! `pcmem store` and `pcmem recall` on a folder of generated images, as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

mod common;

fn pcmem(args: &[&str]) -> Command {
    let mut c = common::pcmem();
    c.args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Eight distinct 16x16 RGB images (seeded blocks of colour), `img0.png` .. `img7.png`.
fn images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    for k in 0..8 {
        let colours: Vec<[u8; 3]> = (0..16).map(|_| [next(), next(), next()]).collect();
        let img = image::RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb(colours[((y / 4) * 4 + x / 4) as usize])
        });
        img.save(dir.join(format!("img{k}.png"))).unwrap();
    }
}

#[test]
fn eight_images_are_stored_and_recalled_from_their_top_half() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, model, out) = (
        tmp.path().join("pics"),
        tmp.path().join("memory"),
        tmp.path().join("recalled"),
    );
    images(&dir);
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    let o = pcmem(&["store"])
        .arg(&dir)
        .arg("--out")
        .arg(&model)
        .args([
            "--hidden",
            "64",
            "--max-epochs",
            "1500",
            "--target-mse",
            "1e-4",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("stored 8 images"), "{}", text(&o));
    for f in [
        "manifest.json",
        "curve.png",
        "stored.f32",
        "pcn/config.json",
    ] {
        assert!(model.join(f).exists(), "{f}");
    }
    let pics: Vec<_> = (0..8).map(|k| dir.join(format!("img{k}.png"))).collect();
    let o = pcmem(&["recall"])
        .arg(&model)
        .args(&pics)
        .args(["--corrupt", "top:0.5", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    for k in 0..8 {
        let line = said
            .lines()
            .find(|l| l.contains(&format!("img{k}.png:")))
            .unwrap_or_else(|| panic!("{said}"));
        assert!(
            line.contains(&format!("nearest stored image img{k}.png")),
            "{line}"
        );
        let png = image::open(out.join(format!("img{k}__recall.png"))).unwrap();
        assert_eq!(
            png.height() * 2 + 4,
            png.width(),
            "cue and recall side by side"
        );
    }
    // A mask image: the left half known.
    let mask = tmp.path().join("left.png");
    image::GrayImage::from_fn(16, 16, |x, _| image::Luma([if x < 8 { 255 } else { 0 }]))
        .save(&mask)
        .unwrap();
    let o = pcmem(&["recall"])
        .arg(&model)
        .arg(&pics[3])
        .arg("--corrupt")
        .arg(&mask)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        text(&o).contains("nearest stored image img3.png"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_folders_images_and_memories_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pics");
    images(&dir);
    image::RgbImage::new(20, 10)
        .save(dir.join("wide.png"))
        .unwrap();
    let model = tmp.path().join("m");
    let o = pcmem(&["store"])
        .arg(&dir)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("wide.png") && text(&o).contains("--size"),
        "{}",
        text(&o)
    );
    std::fs::write(dir.join("zz-broken.png"), b"not a png").unwrap();
    let o = pcmem(&["store"])
        .arg(&dir)
        .args(["--size", "16x16", "--out"])
        .arg(&model)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("zz-broken.png"), "{}", text(&o));
    // A memory of another format.
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(
        model.join("manifest.json"),
        r#"{"format": 99, "pcmem": "9.0.0"}"#,
    )
    .unwrap();
    let o = pcmem(&["recall"])
        .arg(&model)
        .arg(dir.join("img0.png"))
        .args(["--corrupt", "top:0.5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("manifest.json") && text(&o).contains("format 99"),
        "{}",
        text(&o)
    );
}

#[test]
fn every_model_kind_can_be_stored_and_recalled_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pics");
    images(&dir);
    let pics: Vec<_> = (0..8).map(|k| dir.join(format!("img{k}.png"))).collect();
    for model in ["autoencoder", "modern_hopfield", "hopfield", "dense_am"] {
        let mem = tmp.path().join(model);
        let o = pcmem(&["store"])
            .arg(&dir)
            .arg("--out")
            .arg(&mem)
            .args(["--model", model, "--hidden", "64", "--max-epochs", "300"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{model}: {}", text(&o));
        assert!(text(&o).contains("stored 8 images"), "{}", text(&o));
        let o = pcmem(&["recall"])
            .arg(&mem)
            .args(&pics)
            .args(["--corrupt", "top:0.5", "--out"])
            .arg(tmp.path().join(format!("out-{model}")))
            .output()
            .unwrap();
        let said = text(&o);
        assert_eq!(o.status.code(), Some(0), "{model}: {said}");
        assert_eq!(said.matches("nearest stored image").count(), 8, "{said}");
        // Each picture is the cue beside the recall, at the stored size (upscaled).
        let png = image::open(tmp.path().join(format!("out-{model}/img0__recall.png"))).unwrap();
        assert_eq!(png.height() * 2 + 4, png.width());
    }
    let o = pcmem(&["store"])
        .arg(&dir)
        .args(["--model", "transformer", "--out"])
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("known: pcn, autoencoder"), "{}", text(&o));
}

//! Statistics of every transform: noise variance, mask fractions and geometry, binarisation.

use pcmem_data::transforms::{apply_mask, binarise, to_hwc_u8, Mask, Noise, PixelRange};

fn mean_var(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    (
        m,
        x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n,
    )
}

#[test]
fn noise_has_the_stated_variance_or_std_and_is_seeded() {
    for (noise, var) in [(Noise::Variance(0.2), 0.2), (Noise::Std(0.2), 0.04)] {
        let mut x = vec![0.5f32; 200_000];
        noise.apply(&mut x, 3);
        let (m, v) = mean_var(&x);
        assert!((m - 0.5).abs() < 0.005, "{noise:?}: mean {m}");
        assert!(
            (v - var).abs() < 0.02 * var,
            "{noise:?}: variance {v}, expected {var}"
        );
        let mut y = vec![0.5f32; 200_000];
        noise.apply(&mut y, 3);
        assert_eq!(x, y, "same seed, same noise");
        noise.apply(&mut y, 4);
        assert_ne!(x, y);
    }
    assert!((Noise::Variance(0.2).std() - 0.447).abs() < 1e-3);
}

#[test]
fn masks_keep_the_stated_fraction_in_the_stated_place() {
    let shape = (3, 32, 32);
    for p in [0.5, 0.25, 0.125, 0.0625] {
        let m = Mask::TopRows { fraction: p }.build(shape, 0);
        let kept = m.iter().sum::<f32>() as f64 / m.len() as f64;
        assert!((kept - p).abs() < 1e-9, "top rows {p}: kept {kept}");
        let rows = (p * 32.0) as usize;
        for c in 0..3 {
            assert!(m[c * 1024..c * 1024 + rows * 32].iter().all(|&v| v == 1.0));
            assert!(m[c * 1024 + rows * 32..(c + 1) * 1024]
                .iter()
                .all(|&v| v == 0.0));
        }
        let r = Mask::RandomPixels { fraction: p }.build(shape, 5);
        let kept = r.iter().sum::<f32>() as f64 / r.len() as f64;
        assert!((kept - p).abs() < 1.0 / 1024.0, "random {p}: kept {kept}");
        assert_eq!(&r[..1024], &r[1024..2048], "same pixels in every channel");
        assert_eq!(r, Mask::RandomPixels { fraction: p }.build(shape, 5));
    }
    let c = Mask::CentrePatch { fraction: 0.5 }.build((1, 8, 8), 0);
    let hidden: Vec<usize> = (0..64).filter(|&i| c[i] == 0.0).collect();
    assert_eq!(hidden.len(), 16);
    assert!(hidden
        .iter()
        .all(|&i| (2..6).contains(&(i / 8)) && (2..6).contains(&(i % 8))));
    let rc = Mask::RightColumns { fraction: 0.25 }.build((1, 4, 8), 0);
    assert!((0..32).all(|i| (rc[i] == 0.0) == (i % 8 >= 6)));
    let mut x = vec![0.7f32; 2 * 64];
    apply_mask(&mut x, &c, 0.0);
    assert_eq!(x.iter().filter(|&&v| v == 0.0).count(), 32);
}

#[test]
fn ranges_binarisation_and_pictures() {
    let mut x = vec![0.0, 0.5, 1.0];
    PixelRange::MinusOneOne.apply(&mut x);
    assert_eq!(x, vec![-1.0, 0.0, 1.0]);
    PixelRange::MinusOneOne.invert(&mut x);
    assert_eq!(x, vec![0.0, 0.5, 1.0]);
    assert_eq!(binarise(&[0.2, 0.6, 0.5], 0.5), vec![-1.0, 1.0, -1.0]);
    // Channel-major (R plane, G plane) to interleaved RGB bytes.
    let row = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
    assert_eq!(to_hwc_u8(&row, (3, 1, 2)), vec![255, 0, 128, 0, 255, 128]);
}

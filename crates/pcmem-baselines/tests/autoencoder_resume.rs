//! The autoencoder's training survives a stop: checkpointed, stopped by the stop flag mid
//! training, resumed by a new process's model, it ends with the bits of a run never stopped; a
//! checkpoint of another config is refused by name and training restarts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Device, Tensor};
use pcmem_baselines::{Autoencoder, AutoencoderConfig};
use pcmem_model::{AssociativeMemory, CheckpointPolicy, PcnError, Resume};

fn config() -> AutoencoderConfig {
    AutoencoderConfig {
        hidden_dim: 16,
        max_epochs: 14,
        target_mse: 0.0,
        ..Default::default()
    }
}

fn data() -> Tensor {
    let v: Vec<f32> = (0..6 * 24)
        .map(|i| ((i * 37 % 101) as f32) / 100.0)
        .collect();
    Tensor::from_vec(v, (6, 24), &Device::Cpu).unwrap()
}

fn weights(ae: &Autoencoder, x: &Tensor) -> Vec<f32> {
    // The map on the data carries every weight's bits.
    ae.forward(x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Trains `config()` with a checkpoint at `dir/ae`, raising the stop flag after `epoch`
/// epochs: the checkpoint then holds that epoch. Returns the error the stop ends with.
fn stop_at(dir: &std::path::Path, epoch: usize) -> Box<dyn std::error::Error + Send + Sync> {
    let flag = Arc::new(AtomicBool::new(false));
    let policy = CheckpointPolicy::new(dir.join("ae"), Duration::from_secs(3600), "data")
        .with_stop(flag.clone());
    Autoencoder::new(config(), 24)
        .unwrap()
        .fit_resumable(&data(), &policy, &mut |p| {
            if p.epoch == epoch {
                flag.store(true, Ordering::Relaxed);
            }
        })
        .unwrap_err()
}

#[test]
fn a_stopped_autoencoder_resumes_to_the_bits_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let x = data();
    let mut whole = Autoencoder::new(config(), 24).unwrap();
    let full = whole.fit(&x).unwrap();
    assert_eq!(full.curve.len(), 14);

    let err = stop_at(dir.path(), 5);
    assert!(
        matches!(
            err.downcast_ref::<PcnError>(),
            Some(PcnError::Interrupted { epochs: 5, .. })
        ),
        "{err}"
    );
    let policy = CheckpointPolicy::new(dir.path().join("ae"), Duration::ZERO, "data");
    assert!(policy.exists());
    let mut second = Autoencoder::new(config(), 24).unwrap();
    let (report, resume) = second.fit_resumable(&x, &policy, &mut |_| {}).unwrap();
    assert_eq!(resume, Resume::From { epoch: 5 });
    assert_eq!(report.curve, full.curve);
    assert_eq!(weights(&second, &x), weights(&whole, &x));
}

#[test]
fn a_checkpoint_of_another_config_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let x = data();
    let policy = CheckpointPolicy::new(dir.path().join("ae"), Duration::ZERO, "data");
    Autoencoder::new(config(), 24)
        .unwrap()
        .fit_resumable(&x, &policy, &mut |_| {})
        .unwrap();
    assert!(policy.exists());
    let other = AutoencoderConfig {
        lr: 2e-3,
        ..config()
    };
    let (report, resume) = Autoencoder::new(other, 24)
        .unwrap()
        .fit_resumable(&x, &policy, &mut |_| {})
        .unwrap();
    match resume {
        Resume::Refused { reason, .. } => assert!(reason.contains("config.lr"), "{reason}"),
        r => panic!("expected a refusal, got {r:?}"),
    }
    assert_eq!(report.curve.len(), 14, "trained from epoch 0");
}

#[test]
fn a_checkpoint_resumes_under_other_recall_settings() {
    // Recall settings do not decide training: changed after a stop, training still resumes.
    let dir = tempfile::tempdir().unwrap();
    let x = data();
    let mut whole = Autoencoder::new(config(), 24).unwrap();
    let full = whole.fit(&x).unwrap();
    stop_at(dir.path(), 6);
    let other = AutoencoderConfig {
        recall_iterations: 1,
        recall_tolerance: 0.5,
        ..config()
    };
    let policy = CheckpointPolicy::new(dir.path().join("ae"), Duration::ZERO, "data");
    let mut second = Autoencoder::new(other, 24).unwrap();
    let (report, resume) = second.fit_resumable(&x, &policy, &mut |_| {}).unwrap();
    assert_eq!(resume, Resume::From { epoch: 6 });
    assert_eq!(report.curve, full.curve);
    assert_eq!(weights(&second, &x), weights(&whole, &x));
}

#[test]
fn a_checkpoint_written_before_a_setting_existed_resumes() {
    // A checkpoint of a binary that predates `init` has no such key: it reads as the
    // default, the same training, and resumes (a campaign's half-trained cells survive the
    // upgrade); a checkpoint whose config says another start is refused by name.
    let dir = tempfile::tempdir().unwrap();
    let x = data();
    let mut whole = Autoencoder::new(config(), 24).unwrap();
    let full = whole.fit(&x).unwrap();
    stop_at(dir.path(), 4);
    // Rewrite the checkpoint's config as the older binary wrote it, then as another start.
    let meta_path = dir.path().join("ae.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let config_at = |meta: &mut serde_json::Value| -> serde_json::Value {
        let payload = meta.get_mut("payload").expect("payload");
        payload["config"].take()
    };
    // Another start: a copy of the checkpoint whose config says `scaled` is refused by name.
    let other_dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, other_dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let mut scaled = meta.clone();
    scaled["payload"]["config"]["init"] = "scaled".into();
    std::fs::write(
        other_dir.path().join("ae.json"),
        serde_json::to_string(&scaled).unwrap(),
    )
    .unwrap();
    let policy = CheckpointPolicy::new(other_dir.path().join("ae"), Duration::ZERO, "data");
    let (_, resume) = Autoencoder::new(config(), 24)
        .unwrap()
        .fit_resumable(&x, &policy, &mut |_| {})
        .unwrap();
    match resume {
        Resume::Refused { reason, .. } => assert!(reason.contains("config.init"), "{reason}"),
        r => panic!("expected a refusal, got {r:?}"),
    }
    let mut older = meta.clone();
    let mut cfg = config_at(&mut older);
    assert_eq!(cfg["init"], "uniform_fan_in");
    cfg.as_object_mut().unwrap().remove("init");
    older["payload"]["config"] = cfg.clone();
    std::fs::write(&meta_path, serde_json::to_string(&older).unwrap()).unwrap();
    let policy = CheckpointPolicy::new(dir.path().join("ae"), Duration::from_secs(3600), "data");
    let mut second = Autoencoder::new(config(), 24).unwrap();
    let (report, resume) = second.fit_resumable(&x, &policy, &mut |_| {}).unwrap();
    assert_eq!(resume, Resume::From { epoch: 4 });
    assert_eq!(report.curve, full.curve);
    assert_eq!(weights(&second, &x), weights(&whole, &x));
}

/// A rate high enough that the loss rises again after its lowest epoch.
fn unstable() -> AutoencoderConfig {
    AutoencoderConfig {
        lr: 0.3,
        restore_best: true,
        ..config()
    }
}

/// The mean squared error of the map on `x`.
fn loss(ae: &Autoencoder, x: &Tensor) -> f64 {
    let y = ae.forward(x).unwrap();
    (y - x)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

#[test]
fn restore_best_returns_the_weights_of_the_lowest_loss_and_survives_a_stop() {
    let x = data();
    let mut last = Autoencoder::new(
        AutoencoderConfig {
            restore_best: false,
            ..unstable()
        },
        24,
    )
    .unwrap();
    let plain = last.fit(&x).unwrap();
    let (argmin, min) = plain
        .curve
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert!(
        argmin + 1 < plain.curve.len(),
        "the loss must rise again: {:?}",
        plain.curve
    );
    assert!(!plain.resolved.contains_key("restored_epoch"));
    let mut best = Autoencoder::new(unstable(), 24).unwrap();
    let report = best.fit(&x).unwrap();
    // The same training (the same curve), another iterate returned: the one whose loss was
    // the lowest, measured again here.
    assert_eq!(report.curve, plain.curve);
    assert_eq!(report.resolved["restored_epoch"], (argmin + 1) as f64);
    assert!(
        report.stop.contains(&format!("epoch {}", argmin + 1)),
        "{}",
        report.stop
    );
    assert!(
        (loss(&best, &x) - min).abs() <= 1e-5 * min,
        "{} vs {min}",
        loss(&best, &x)
    );
    assert!(loss(&last, &x) > 1.01 * min);

    // Stopped after its best epoch, then resumed: the bits of the run never stopped.
    let dir = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let policy = CheckpointPolicy::new(dir.path().join("ae"), Duration::from_secs(3600), "data")
        .with_stop(flag.clone());
    let stop_after = argmin + 2;
    Autoencoder::new(unstable(), 24)
        .unwrap()
        .fit_resumable(&x, &policy, &mut |p| {
            if p.epoch == stop_after {
                flag.store(true, Ordering::Relaxed);
            }
        })
        .unwrap_err();
    let policy = CheckpointPolicy::new(dir.path().join("ae"), Duration::ZERO, "data");
    let mut second = Autoencoder::new(unstable(), 24).unwrap();
    let (resumed, resume) = second.fit_resumable(&x, &policy, &mut |_| {}).unwrap();
    assert_eq!(resume, Resume::From { epoch: stop_after });
    assert_eq!(resumed.curve, report.curve);
    assert_eq!(resumed.resolved, report.resolved);
    assert_eq!(weights(&second, &x), weights(&best, &x));
    // The finished checkpoint (a kept model) gives the same weights again.
    let mut kept = Autoencoder::new(unstable(), 24).unwrap();
    let (again, _) = kept.fit_resumable(&x, &policy, &mut |_| {}).unwrap();
    assert_eq!(again.resolved, report.resolved);
    assert_eq!(weights(&kept, &x), weights(&best, &x));
}

//! Resumable training: a run interrupted after any epoch and resumed from its checkpoint ends
//! with the same bits (weights, curve, stop reason) as a run never interrupted, for both
//! kernels, with Adam and persistent value nodes; checkpoints from another config, another
//! identity, a corrupt or half-written checkpoint are refused by name and training restarts.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use candle_core::{Device, Tensor};
use pcmem_model::checkpoint::{save_state, Peek};
use pcmem_model::{
    CheckpointPolicy, Kernel, MemoryPrior, Optimizer, Pcn, PcnConfig, Resume, TrainReport,
    ValueInit,
};

mod common;

fn config(persistent: bool) -> PcnConfig {
    let mut cfg = PcnConfig::new(48, 16);
    cfg.layers = 2;
    cfg.memory_prior = MemoryPrior::Learned;
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.alpha = 1e-2;
    cfg.learning.max_epochs = 12;
    cfg.learning.target_mse = None;
    cfg.learning.batch_size = Some(4);
    cfg.learning.persistent_values = persistent;
    cfg.value_init = ValueInit::Random { std: 0.3 };
    cfg.inference.gamma = 0.05;
    cfg.inference.steps = 15;
    cfg
}

fn assert_same(a: &(TrainReport, Pcn), b: &(TrainReport, Pcn), tag: &str) {
    assert_eq!(a.0.epochs.len(), b.0.epochs.len(), "{tag}: epochs");
    for (x, y) in a.0.epochs.iter().zip(&b.0.epochs) {
        assert_eq!(
            x.energy.to_bits(),
            y.energy.to_bits(),
            "{tag}: epoch {} energy {} vs {}",
            x.epoch,
            x.energy,
            y.energy
        );
        assert_eq!(x, y, "{tag}");
    }
    assert_eq!(a.0.stop, b.0.stop, "{tag}: stop");
    for (i, (wa, wb)) in a.1.weights().iter().zip(b.1.weights()).enumerate() {
        assert_eq!(
            common::bits(wa),
            common::bits(wb),
            "{tag}: weights w{}",
            i + 1
        );
    }
    assert_eq!(
        common::bits(a.1.prior().unwrap()),
        common::bits(b.1.prior().unwrap()),
        "{tag}: prior"
    );
    assert_eq!(a.1.error_mse(), b.1.error_mse(), "{tag}: error_mse");
}

fn uninterrupted(cfg: &PcnConfig, kernel: Kernel, data: &Tensor) -> (TrainReport, Pcn) {
    let mut pcn = cfg.init_with_kernel(&Device::Cpu, kernel).unwrap();
    let rep = pcn.train(data).unwrap();
    (rep, pcn)
}

/// Trains with checkpoints after every epoch and "dies" (panics) after `kill_after` epochs.
fn killed(
    cfg: &PcnConfig,
    kernel: Kernel,
    data: &Tensor,
    policy: &CheckpointPolicy,
    kill_after: usize,
) {
    let mut pcn = cfg.init_with_kernel(&Device::Cpu, kernel).unwrap();
    let died = catch_unwind(AssertUnwindSafe(|| {
        pcn.train_resumable(data, policy, |e| {
            if e.epoch + 1 == kill_after {
                panic!("killed");
            }
        })
    }));
    assert!(died.is_err(), "the run should have died");
}

fn resumed(
    cfg: &PcnConfig,
    kernel: Kernel,
    data: &Tensor,
    policy: &CheckpointPolicy,
) -> ((TrainReport, Pcn), Resume) {
    let mut pcn = cfg.init_with_kernel(&Device::Cpu, kernel).unwrap();
    let (rep, resume) = pcn.train_resumable(data, policy, |_| {}).unwrap();
    ((rep, pcn), resume)
}

fn policy(dir: &Path, name: &str) -> CheckpointPolicy {
    CheckpointPolicy::new(dir.join(name), Duration::ZERO, "data-a")
}

#[test]
fn a_checkpoint_carries_the_training_time_of_the_runs_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(10, 48, 3);
    let cfg = config(false);
    let first = policy(dir.path(), "time");
    killed(&cfg, Kernel::Fused, &data, &first, 5);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.meta_path()).unwrap()).unwrap();
    let saved = meta["train_seconds"]
        .as_f64()
        .expect("train_seconds in the checkpoint");
    assert!(saved > 0.0, "{saved}");
    // The next run (its own policy) learns the earlier time when it resumes.
    let second = policy(dir.path(), "time");
    assert_eq!(second.earlier_seconds(), 0.0);
    let (_, resume) = resumed(&cfg, Kernel::Fused, &data, &second);
    assert_eq!(resume, Resume::From { epoch: 4 });
    assert_eq!(second.earlier_seconds(), saved);
    assert!(second.training_seconds() > saved);
}

#[test]
fn peek_reads_the_identity_and_epochs_of_either_kind_of_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(policy(dir.path(), "none").peek(), None);
    // The PCN's checkpoint lists its epochs: killed after 4 finished ones.
    let pcn = policy(dir.path(), "pcn");
    killed(
        &config(false),
        Kernel::Fused,
        &common::scrambled(10, 48, 3),
        &pcn,
        5,
    );
    let peek = Peek {
        identity: "data-a".into(),
        epochs: 4,
        config: Some(serde_json::to_value(config(false)).unwrap()),
    };
    assert_eq!(pcn.peek(), Some(peek));
    // The other memories' state counts them, and states its config in its payload.
    let state = policy(dir.path(), "state");
    let w = Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    let tensors = std::collections::HashMap::from([("w".to_string(), w)]);
    save_state(&state, 7, &serde_json::json!({}), &tensors).unwrap();
    assert_eq!(state.peek().map(|p| (p.epochs, p.config)), Some((7, None)));
    let payload = serde_json::json!({"config": {"lr": 0.5}});
    save_state(&state, 8, &payload, &tensors).unwrap();
    assert_eq!(
        state.peek().and_then(|p| p.config),
        Some(serde_json::json!({"lr": 0.5}))
    );
    // A JSON half that does not parse says nothing.
    std::fs::write(state.meta_path(), "{").unwrap();
    assert_eq!(state.peek(), None);
}

#[test]
fn resumed_training_has_the_bits_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(10, 48, 3);
    for kernel in [Kernel::Candle, Kernel::Fused] {
        for persistent in [false, true] {
            let cfg = config(persistent);
            let tag = format!("{kernel:?} persistent={persistent}");
            let whole = uninterrupted(&cfg, kernel, &data);
            let p = policy(dir.path(), &format!("{kernel:?}-{persistent}"));
            // Killed after 5 epochs: the checkpoint written after epoch 4 (0-based) remains
            // (the kill comes in the progress callback, before epoch 5's checkpoint).
            killed(&cfg, kernel, &data, &p, 5);
            assert!(p.exists(), "{tag}: no checkpoint left by the killed run");
            let (again, resume) = resumed(&cfg, kernel, &data, &p);
            assert_eq!(resume, Resume::From { epoch: 4 }, "{tag}");
            assert_same(&again, &whole, &tag);
            // Killed twice more, at other epochs, with the same checkpoint stem.
            p.remove().unwrap();
            killed(&cfg, kernel, &data, &p, 2);
            killed(&cfg, kernel, &data, &p, 9);
            let (again, resume) = resumed(&cfg, kernel, &data, &p);
            assert_eq!(resume, Resume::From { epoch: 8 }, "{tag}");
            assert_same(&again, &whole, &tag);
            // One tensor file remains (older ones are removed as new ones are written).
            let files: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with(&format!("{kernel:?}-{persistent}.e")))
                .collect();
            assert_eq!(files.len(), 1, "{tag}: {files:?}");
            p.remove().unwrap();
            assert!(!p.exists());
        }
    }
}

#[test]
fn a_finished_training_resumes_as_finished_and_stops_where_it_stopped() {
    // Stopping at the target MSE: the checkpoint written at the stop is read back as done.
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(8, 48, 5);
    let mut cfg = config(false);
    cfg.learning.max_epochs = 400;
    cfg.learning.target_mse = Some(2e-2);
    let whole = uninterrupted(&cfg, Kernel::Fused, &data);
    assert!(
        whole.0.epochs.len() < 400,
        "the target should stop training early"
    );
    let p = policy(dir.path(), "stop");
    let ((first, _), resume) = resumed(&cfg, Kernel::Fused, &data, &p);
    assert_eq!(resume, Resume::Fresh);
    assert_eq!(first.epochs, whole.0.epochs);
    let (again, resume) = resumed(&cfg, Kernel::Fused, &data, &p);
    assert_eq!(
        resume,
        Resume::From {
            epoch: whole.0.epochs.len()
        }
    );
    assert_same(&again, &whole, "stopped at the target");
}

#[test]
fn a_run_killed_after_a_plateau_decay_resumes_at_the_decayed_rate() {
    // The decays taken are replayed from the checkpoint's curve, so the resumed run trains at
    // the rate the killed one had reached.
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(10, 48, 6);
    let mut cfg = config(false);
    cfg.learning.max_epochs = 60;
    cfg.learning.patience = 2;
    cfg.learning.min_rel_improvement = 0.3;
    cfg.learning.plateau_decays = 2;
    for kernel in [Kernel::Candle, Kernel::Fused] {
        let whole = uninterrupted(&cfg, kernel, &data);
        let first = *whole
            .0
            .decay_epochs
            .first()
            .expect("a decay within 60 epochs");
        assert!(
            first + 3 < whole.0.epochs.len(),
            "{kernel:?}: {:?}",
            whole.0
        );
        let p = policy(dir.path(), &format!("decay-{kernel:?}"));
        // Killed two epochs after the first decay: the checkpoint holds epochs 0..=first+1.
        killed(&cfg, kernel, &data, &p, first + 3);
        let (again, resume) = resumed(&cfg, kernel, &data, &p);
        assert_eq!(resume, Resume::From { epoch: first + 2 }, "{kernel:?}");
        assert_eq!(again.0.decay_epochs, whole.0.decay_epochs, "{kernel:?}");
        assert_same(&again, &whole, &format!("{kernel:?} across a decay"));
        p.remove().unwrap();
    }
}

#[test]
fn unusable_checkpoints_are_refused_by_name_and_training_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(10, 48, 4);
    let cfg = config(false);
    let whole = uninterrupted(&cfg, Kernel::Fused, &data);
    let p = policy(dir.path(), "cell");
    let refused = |p: &CheckpointPolicy, cfg: &PcnConfig, want: &str| {
        let (run, resume) = resumed(cfg, Kernel::Fused, &data, p);
        match resume {
            Resume::Refused { path, reason } => {
                assert_eq!(path, p.meta_path());
                assert!(reason.contains(want), "`{reason}` should name `{want}`");
            }
            other => panic!("expected a refusal naming {want}, got {other:?}"),
        }
        run
    };
    // Each case starts from a run killed after 3 epochs (a finished run's checkpoint would
    // resume as finished, so the one before is removed first).
    let kill = |p: &CheckpointPolicy| {
        p.remove().unwrap();
        killed(&cfg, Kernel::Fused, &data, p, 3);
    };
    // Another config (other learning rate): refused naming the key, fresh run.
    kill(&p);
    let mut other = cfg.clone();
    other.learning.alpha = 2e-2;
    refused(&p, &other, "learning.alpha");
    // Another identity (other data).
    kill(&p);
    let p_other = CheckpointPolicy::new(p.stem.clone(), Duration::ZERO, "data-b");
    let run = refused(&p_other, &cfg, "data-a");
    assert_same(&run, &whole, "restarted after another identity");
    // Corrupt JSON (a half-written file from another tool).
    kill(&p);
    let text = std::fs::read(p.meta_path()).unwrap();
    std::fs::write(p.meta_path(), &text[..text.len() / 2]).unwrap();
    refused(&p, &cfg, "does not parse");
    // Its tensor file gone.
    kill(&p);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "safetensors") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let run = refused(&p, &cfg, "tensor file unreadable");
    assert_same(&run, &whole, "restarted after a missing tensor file");
    // The refused checkpoint was removed; the successful run left its last one.
    assert!(p.exists());
}

#[test]
fn checkpoints_are_written_no_more_often_than_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(6, 48, 6);
    let cfg = config(false);
    // An hour between checkpoints: only the one at the end of training is written.
    let p = CheckpointPolicy::new(dir.path().join("slow"), Duration::from_secs(3600), "x");
    killed(&cfg, Kernel::Fused, &data, &p, 6);
    assert!(!p.exists(), "no checkpoint is due within the hour");
    let (_, resume) = resumed(&cfg, Kernel::Fused, &data, &p);
    assert_eq!(resume, Resume::Fresh);
    assert!(p.exists(), "training's end writes one");
}

#[test]
fn a_checkpoint_naming_the_retired_kernel_setting_still_resumes() {
    // Checkpoints written while the kernel was a model setting carry `"kernel": "fused"` in
    // their config; the kernel is an execution option now, which is no reason to restart.
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(8, 48, 6);
    let cfg = config(false);
    let p = policy(dir.path(), "legacy");
    killed(&cfg, Kernel::Fused, &data, &p, 4);
    let meta = dir.path().join("legacy.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    v["config"]["kernel"] = "fused".into();
    std::fs::write(&meta, serde_json::to_string(&v).unwrap()).unwrap();
    let (_, resume) = resumed(&cfg, Kernel::Fused, &data, &p);
    assert!(matches!(resume, Resume::From { .. }), "{resume:?}");
}

#[test]
fn a_checkpoint_resumes_under_other_recall_settings_to_the_same_bits() {
    // Recall settings do not decide training: a cell whose recall changed after it was killed
    // resumes its training and ends with the bits of an uninterrupted run.
    let dir = tempfile::tempdir().unwrap();
    let data = common::scrambled(8, 48, 7);
    let cfg = config(false);
    let whole = uninterrupted(&cfg, Kernel::Fused, &data);
    let p = policy(dir.path(), "recall");
    killed(&cfg, Kernel::Fused, &data, &p, 3);
    let mut other = cfg.clone();
    other.recall.steps += 17;
    other.recall.iterations += 2;
    let (run, resume) = resumed(&other, Kernel::Fused, &data, &p);
    assert_eq!(resume, Resume::From { epoch: 2 });
    assert_same(&run, &whole, "resumed under other recall settings");
    // A training setting still refuses it (the learning rate).
    p.remove().unwrap();
    killed(&cfg, Kernel::Fused, &data, &p, 3);
    other.learning.alpha *= 2.0;
    let (_, resume) = resumed(&other, Kernel::Fused, &data, &p);
    assert!(matches!(resume, Resume::Refused { .. }), "{resume:?}");
}

//! Checkpoints, determinism, and clear errors on bad input.

mod common;

use candle_core::{Device, Tensor};
use pcmem_model::{Optimizer, Pcn, PcnConfig, PcnError, ValueInit};

fn small_cfg() -> PcnConfig {
    let mut cfg = PcnConfig::new(20, 8);
    cfg.learning.max_epochs = 20;
    cfg.learning.optimizer = Optimizer::adam();
    cfg.learning.alpha = 1e-2;
    cfg.value_init = ValueInit::Random { std: 0.1 };
    cfg.recall.steps = 30;
    cfg.recall.iterations = 3;
    cfg
}

fn data(rows: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * 20)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect();
    Tensor::from_vec(v, (rows, 20), &Device::Cpu).unwrap()
}

#[test]
fn save_and_load_round_trip_recalls_identically() {
    let mut pcn = small_cfg().init(&Device::Cpu).unwrap();
    pcn.train(&data(5)).unwrap();
    let dir = std::env::temp_dir().join(format!("pcmem-ckpt-{}", std::process::id()));
    pcn.save(&dir).unwrap();
    let loaded = Pcn::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(loaded.config(), pcn.config());
    let cue = data(5);
    let (a, _) = pcn.recall_noisy(&cue).unwrap();
    let (b, _) = loaded.recall_noisy(&cue).unwrap();
    assert_eq!(common::bits(&a), common::bits(&b));
    let mask = Tensor::from_vec(
        (0..20).map(|i| (i < 10) as u8 as f32).collect::<Vec<_>>(),
        (1, 20),
        &Device::Cpu,
    )
    .unwrap();
    let (a, _) = pcn.recall_partial(&cue, &mask).unwrap();
    let (b, _) = loaded.recall_partial(&cue, &mask).unwrap();
    assert_eq!(common::bits(&a), common::bits(&b));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loading_a_missing_or_broken_checkpoint_names_the_file() {
    let dir = std::env::temp_dir().join(format!("pcmem-bad-ckpt-{}", std::process::id()));
    let err = Pcn::load(&dir, &Device::Cpu).unwrap_err();
    assert!(matches!(err, PcnError::Io { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let err = Pcn::load(&dir, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&small_cfg()).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("weights.safetensors"), b"garbage").unwrap();
    let err = Pcn::load(&dir, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn same_seed_same_bits_different_seed_different_bits() {
    let run = |seed: u64| {
        let mut cfg = small_cfg();
        cfg.seed = seed;
        let mut pcn = cfg.init(&Device::Cpu).unwrap();
        let report = pcn.train(&data(6)).unwrap();
        let (r, _) = pcn.recall_noisy(&data(6)).unwrap();
        (
            report
                .epochs
                .iter()
                .map(|e| e.energy.to_bits())
                .collect::<Vec<_>>(),
            common::bits(&pcn.weights()[0]),
            common::bits(&r),
        )
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5).1, run(6).1);
}

#[test]
fn bad_sizes_and_rates_are_rejected_with_the_field_named() {
    type Mutation = fn(&mut PcnConfig);
    let cases: Vec<(Mutation, &str)> = vec![
        (|c| c.input_dim = 0, "input_dim"),
        (|c| c.hidden_dim = 0, "hidden_dim"),
        (|c| c.layers = 0, "layers"),
        (|c| c.inference.gamma = 0.0, "inference.gamma"),
        (|c| c.inference.gamma = -0.1, "inference.gamma"),
        (|c| c.inference.gamma = f64::NAN, "inference.gamma"),
        (|c| c.inference.steps = 0, "inference.steps"),
        (|c| c.learning.alpha = -1e-3, "learning.alpha"),
        (|c| c.learning.batch_size = Some(0), "learning.batch_size"),
        (|c| c.recall.iterations = 0, "recall.iterations"),
        (
            |c| c.value_init = ValueInit::Random { std: -1.0 },
            "value_init.std",
        ),
    ];
    for (mutate, field) in cases {
        let mut cfg = small_cfg();
        mutate(&mut cfg);
        match cfg.init(&Device::Cpu) {
            Err(PcnError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn shape_mismatches_and_non_finite_data_are_errors_not_panics() {
    let mut pcn = small_cfg().init(&Device::Cpu).unwrap();
    let wrong = Tensor::zeros((4, 21), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = pcn.train(&wrong).unwrap_err();
    assert!(
        matches!(
            err,
            PcnError::Shape {
                what: "patterns",
                ..
            }
        ),
        "{err}"
    );
    let empty = Tensor::zeros((0, 20), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        pcn.train(&empty).unwrap_err(),
        PcnError::Shape { .. }
    ));
    let vec1 = Tensor::zeros(20, candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        pcn.recall_noisy(&vec1).unwrap_err(),
        PcnError::Shape { .. }
    ));
    let mut v = vec![0.5f32; 3 * 20];
    v[17] = f32::NAN;
    let nan = Tensor::from_vec(v.clone(), (3, 20), &Device::Cpu).unwrap();
    assert!(matches!(
        pcn.train(&nan).unwrap_err(),
        PcnError::NonFinite { what: "patterns" }
    ));
    v[17] = f32::INFINITY;
    let inf = Tensor::from_vec(v, (3, 20), &Device::Cpu).unwrap();
    assert!(matches!(
        pcn.recall_noisy(&inf).unwrap_err(),
        PcnError::NonFinite { what: "cues" }
    ));
    let bad_mask = Tensor::ones((2, 19), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = pcn.recall_partial(&data(2), &bad_mask).unwrap_err();
    assert!(
        matches!(
            err,
            PcnError::Shape {
                what: "known-pixel mask",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn diverging_inference_stops_with_an_error_naming_the_step_and_gamma() {
    let mut cfg = small_cfg();
    cfg.learning.optimizer = Optimizer::Sgd;
    cfg.inference.gamma = 50.0;
    cfg.inference.steps = 400;
    cfg.inference.tolerance = Some(1e-12);
    let mut pcn = cfg.init(&Device::Cpu).unwrap();
    let err = pcn.train(&data(4)).unwrap_err();
    match &err {
        PcnError::Diverged {
            phase, step, gamma, ..
        } => {
            assert_eq!(*phase, "training");
            assert!(*step > 0 && *step < 400);
            assert_eq!(*gamma, 50.0);
        }
        other => panic!("expected Diverged, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("smaller inference rate gamma"), "{msg}");
}

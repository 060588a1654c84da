//! Resumable training: the state of a PCN between two epochs, written atomically so that a run
//! killed at any moment (`kill -9`, a SLURM time limit, pre-emption) resumes where it stopped and
//! ends with the same bits as a run that was never interrupted.
//!
//! A checkpoint with stem `S` is two files: `S.e<E>.safetensors` (weights, memory vector, Adam
//! moments and, with persistent value nodes, the kept nodes, after `E` epochs) and `S.json`
//! (format, the caller's identity string, the full model config, the training curve so far, the
//! Adam step, the random generator's position, and the name of the tensor file). The tensor file
//! is written first under a new name, then the JSON is replaced by rename: whichever moment the
//! process dies, `S.json` names a complete tensor file. A checkpoint whose config or identity
//! differs from the run's (another grid cell, other data) is refused and training restarts.
//!
//! ```
//! use std::time::Duration;
//! use candle_core::{Device, Tensor};
//! use pcmem_model::{CheckpointPolicy, PcnConfig, Resume};
//!
//! let dir = std::env::temp_dir().join(format!("pcmem-ckpt-doc-{}", std::process::id()));
//! let policy = CheckpointPolicy::new(dir.join("cell"), Duration::ZERO, "data sha256 ...");
//! let mut cfg = PcnConfig::new(12, 6);
//! cfg.learning.max_epochs = 4;
//! let images = Tensor::rand(0f32, 1f32, (5, 12), &Device::Cpu)?;
//! let (report, resume) = cfg.init(&Device::Cpu)?.train_resumable(&images, &policy, |_| {})?;
//! assert_eq!((report.epochs.len(), resume), (4, Resume::Fresh));
//! assert!(policy.exists()); // the last checkpoint stays until the caller has what it needs
//! policy.remove()?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::PcnConfig;
use crate::error::{PcnError, Result};
use crate::pcn::EpochStats;

/// Version of the checkpoint layout; a file of another version is refused (and training restarts).
const FORMAT: u32 = 1;

/// Where and how often [`crate::Pcn::train_resumable`] saves the training state.
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    /// Path stem: the state goes to `<stem>.json` and `<stem>.e<epoch>.safetensors`.
    pub stem: PathBuf,
    /// Least time between two checkpoints; `Duration::ZERO` saves after every epoch.
    pub every: Duration,
    /// What the training depends on besides the model config (e.g. the data checksum): a
    /// checkpoint written under another identity is refused.
    pub identity: String,
    /// When this flag is raised (e.g. by a SIGTERM handler before a scheduler's time limit),
    /// training saves a checkpoint at the end of the current epoch and stops with
    /// [`crate::PcnError::Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
    /// When this policy was made: the start of this run's training (one policy per run).
    started: Instant,
    /// Training seconds of the earlier runs of this cell, as the checkpoint read back said
    /// (f64 bits; 0 until one is read).
    earlier: Arc<AtomicU64>,
}

/// A checkpoint's identity and progress, as [`CheckpointPolicy::peek`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    /// The identity it was written under ([`CheckpointPolicy::identity`]).
    pub identity: String,
    /// Epochs finished when it was written.
    pub epochs: usize,
    /// The model's settings it was written under, where it states them (`config`, or
    /// `payload.config` for the memories that save a payload).
    pub config: Option<serde_json::Value>,
}

/// How a resumable training started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No checkpoint: trained from epoch 0.
    Fresh,
    /// Resumed after this many finished epochs.
    From {
        /// Epochs finished before the checkpoint was written.
        epoch: usize,
    },
    /// This memory does not checkpoint (one-shot storage, or training that cannot resume):
    /// a run killed while fitting starts it again.
    Unsupported,
    /// A checkpoint was there but could not be used (named, with the reason); it was removed
    /// and training started from epoch 0.
    Refused {
        /// The checkpoint's JSON file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
}

impl CheckpointPolicy {
    /// A policy saving to `stem` at most once per `every`, for runs of identity `identity`.
    pub fn new(stem: impl Into<PathBuf>, every: Duration, identity: impl Into<String>) -> Self {
        Self {
            stem: stem.into(),
            every,
            identity: identity.into(),
            stop: None,
            started: Instant::now(),
            earlier: Arc::new(AtomicU64::new(0f64.to_bits())),
        }
    }

    /// Training seconds of the earlier runs that wrote the checkpoint this run resumed from
    /// (0 without one): each checkpoint stores the training time of all runs up to it.
    pub fn earlier_seconds(&self) -> f64 {
        f64::from_bits(self.earlier.load(Ordering::Relaxed))
    }

    /// Training seconds of this cell so far: the earlier runs' and this run's since the policy
    /// was made.
    pub fn training_seconds(&self) -> f64 {
        self.earlier_seconds() + self.started.elapsed().as_secs_f64()
    }

    fn resumed_after(&self, seconds: f64) {
        self.earlier.store(seconds.to_bits(), Ordering::Relaxed);
    }

    /// The same policy, stopping (after a checkpoint) once `flag` is raised.
    pub fn with_stop(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Whether a stop was asked for.
    pub fn stop_asked(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// The JSON half of the checkpoint, `<stem>.json`.
    pub fn meta_path(&self) -> PathBuf {
        with_suffix(&self.stem, ".json")
    }

    /// Whether a checkpoint (its JSON half) exists.
    pub fn exists(&self) -> bool {
        self.meta_path().exists()
    }

    /// What the checkpoint says of itself, read from its JSON half alone (the tensors are not
    /// opened): for an estimate of what a resumed run has left. `None`: no checkpoint, or one
    /// that does not parse or is of another format. Resuming checks much more (identity,
    /// config, tensors) and may still refuse it.
    pub fn peek(&self) -> Option<Peek> {
        let text = std::fs::read(self.meta_path()).ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&text).ok()?;
        if meta.get("format")?.as_u64()? != u64::from(FORMAT) {
            return None;
        }
        // The PCN's checkpoint lists its epochs; the other memories' count them.
        let epochs = match meta.get("epochs")? {
            serde_json::Value::Array(a) => a.len(),
            n => usize::try_from(n.as_u64()?).ok()?,
        };
        Some(Peek {
            identity: meta.get("identity")?.as_str()?.to_string(),
            epochs,
            config: meta
                .get("config")
                .or_else(|| meta.pointer("/payload/config"))
                .cloned(),
        })
    }

    /// Removes the checkpoint: the JSON and every tensor file of this stem. Nothing there is
    /// not an error.
    pub fn remove(&self) -> std::io::Result<()> {
        let meta = self.meta_path();
        match std::fs::remove_file(&meta) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for f in self.tensor_files()? {
            std::fs::remove_file(f)?;
        }
        Ok(())
    }

    fn tensor_file(&self, epochs: usize) -> PathBuf {
        with_suffix(&self.stem, &format!(".e{epochs}.safetensors"))
    }

    /// Tensor files of this stem (`<stem>.e*.safetensors`, temporary ones included).
    fn tensor_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let dir = match self.stem.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Some(base) = self.stem.file_name().and_then(|s| s.to_str()) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{base}.e");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(rest) = name.strip_prefix(&prefix) {
                let digits = rest.split('.').next().unwrap_or("");
                if !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && rest.contains(".safetensors")
                {
                    out.push(e.path());
                }
            }
        }
        Ok(out)
    }
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Position of the model's random generator (ChaCha8: seed, stream, word position).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RngState {
    seed: [u8; 32],
    stream: u64,
    /// A u128, as decimal text (JSON numbers stop at 2^53 in many readers).
    word_pos: String,
}

impl RngState {
    pub(crate) fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    fn restore(&self) -> std::result::Result<ChaCha8Rng, String> {
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|e| format!("rng word position `{}`: {e}", self.word_pos))?;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    format: u32,
    identity: String,
    config: serde_json::Value,
    /// Every finished epoch; training resumes at epoch `epochs.len()`.
    pub epochs: Vec<EpochStats>,
    /// Adam's step counter (None: SGD, or Adam before its first update).
    pub adam_step: Option<i32>,
    rng: RngState,
    /// File name (in the stem's folder) of the tensor half.
    tensors: String,
    /// Training seconds of every run up to this checkpoint (0 in checkpoints of older code).
    #[serde(default)]
    train_seconds: f64,
}

/// A checkpoint read back: the training state to continue from.
pub(crate) struct State {
    pub meta: Meta,
    pub rng: ChaCha8Rng,
    pub tensors: HashMap<String, Tensor>,
}

impl State {
    /// Takes tensor `name`, or says which one the checkpoint lacks.
    pub fn take(&mut self, name: &str, path: &Path) -> Result<Tensor> {
        self.tensors
            .remove(name)
            .ok_or_else(|| PcnError::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}` missing"),
            })
    }
}

/// The atomic write of a checkpoint after `epochs` epochs: the tensors to a new file, then the
/// JSON (made by `meta` from the tensor file's name) renamed over the old one, then older
/// tensor files of this stem removed.
fn commit(
    policy: &CheckpointPolicy,
    epochs: usize,
    tensors: &HashMap<String, Tensor>,
    meta: impl FnOnce(String) -> Vec<u8>,
) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PcnError::Io { path, source }
    };
    if let Some(dir) = policy.stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let final_tensors = policy.tensor_file(epochs);
    let tmp = with_suffix(&final_tensors, ".tmp");
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| PcnError::Checkpoint {
        path: tmp.clone(),
        reason: format!("could not write: {e}"),
    })?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &final_tensors).map_err(io(&final_tensors))?;
    let text = meta(
        final_tensors
            .file_name()
            .and_then(|s| s.to_str())
            .expect("stem is valid text")
            .to_string(),
    );
    let meta_path = policy.meta_path();
    let tmp = with_suffix(&meta_path, ".tmp");
    (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()
    })()
    .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &meta_path).map_err(io(&meta_path))?;
    for f in policy.tensor_files().map_err(io(&policy.stem))? {
        if f != final_tensors {
            std::fs::remove_file(&f).map_err(io(&f))?;
        }
    }
    Ok(())
}

/// Writes a checkpoint after `epochs.len()` finished epochs (see [`commit`]).
pub(crate) fn write(
    policy: &CheckpointPolicy,
    config: &PcnConfig,
    epochs: &[EpochStats],
    adam_step: Option<i32>,
    rng: &ChaCha8Rng,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    commit(policy, epochs.len(), tensors, |tensors| {
        let meta = Meta {
            format: FORMAT,
            identity: policy.identity.clone(),
            config: serde_json::to_value(config).expect("config serialises"),
            epochs: epochs.to_vec(),
            adam_step,
            rng: RngState::of(rng),
            tensors,
            train_seconds: policy.training_seconds(),
        };
        serde_json::to_vec(&meta).expect("checkpoint metadata serialises")
    })
}

/// Reads the JSON half of `policy`'s checkpoint as `M` after checking its format and
/// identity; `Ok(None)`: there is none. The error names the file and the reason.
fn open_meta<M: serde::de::DeserializeOwned>(policy: &CheckpointPolicy) -> Result<Option<M>> {
    let path = policy.meta_path();
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PcnError::Io { path, source }),
    };
    let bad = |reason: String| PcnError::Checkpoint {
        path: path.clone(),
        reason,
    };
    #[derive(Deserialize)]
    struct Header {
        format: u32,
        identity: String,
    }
    let head: Header =
        serde_json::from_slice(&text).map_err(|e| bad(format!("does not parse: {e}")))?;
    if head.format != FORMAT {
        return Err(bad(format!(
            "format {} (this build reads format {FORMAT})",
            head.format
        )));
    }
    if head.identity != policy.identity {
        return Err(bad(format!(
            "written for `{}`, this run is `{}` (other data)",
            head.identity, policy.identity
        )));
    }
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| bad(format!("does not parse: {e}")))
}

/// The tensor half of a checkpoint whose JSON is `policy`'s, onto `device`.
fn open_tensors(
    policy: &CheckpointPolicy,
    name: &str,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let tensor_path = policy.meta_path().with_file_name(name);
    candle_core::safetensors::load(&tensor_path, device).map_err(|e| PcnError::Checkpoint {
        path: tensor_path.clone(),
        reason: format!("tensor file unreadable: {e}"),
    })
}

/// Reads the checkpoint of `policy`, if any, for a model of `config` on `device`. `Ok(None)`:
/// there is none. An error names the file and says why it cannot be used (other config or
/// identity, other format, unreadable, tensor file missing).
pub(crate) fn read(
    policy: &CheckpointPolicy,
    config: &PcnConfig,
    device: &Device,
) -> Result<Option<State>> {
    let Some(meta) = open_meta::<Meta>(policy)? else {
        return Ok(None);
    };
    let bad = |reason: String| PcnError::Checkpoint {
        path: policy.meta_path(),
        reason,
    };
    // What decides training: recall settings may differ (a recall-only change resumes).
    let training = |c: &serde_json::Value| {
        use crate::factory::ModelFactory;
        crate::factory::without_keys(c, crate::memory::PcnFactory::RECALL_KEYS)
    };
    let ours = training(&serde_json::to_value(config).expect("config serialises"));
    // A setting retired since (the kernel, now an execution option) is not a difference.
    let theirs = training(&as_today::<PcnConfig>(&meta.config));
    if theirs != ours {
        let differing = differing_keys(&theirs, &ours, "");
        return Err(bad(format!(
            "written by another model config (differs in {})",
            differing.join(", ")
        )));
    }
    let rng = meta.rng.restore().map_err(bad)?;
    let tensors = open_tensors(policy, &meta.tensors, device)?;
    policy.resumed_after(meta.train_seconds);
    Ok(Some(State { meta, rng, tensors }))
}

/// A config saved in a checkpoint, read back through today's type `C` and written out again, so
/// that a setting added since takes its default and one retired since disappears instead of
/// counting as a difference. A config today's type cannot read comes back as saved (the
/// comparison that follows then names what differs).
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Config {
///     lr: f64,
///     #[serde(default)]
///     init: String,
/// }
/// let saved = serde_json::json!({ "lr": 0.1 });
/// let today = pcmem_model::checkpoint::as_today::<Config>(&saved);
/// assert_eq!(today, serde_json::json!({ "lr": 0.1, "init": "" }));
/// ```
pub fn as_today<C>(saved: &serde_json::Value) -> serde_json::Value
where
    C: Serialize + serde::de::DeserializeOwned,
{
    serde_json::from_value::<C>(saved.clone())
        .ok()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_else(|| saved.clone())
}

/// Dotted keys at which two JSON values differ (a checkpoint's refusal message; the harness's
/// stale records).
pub fn differing_keys(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let sub = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => differing_keys(p, q, &sub),
                        _ => vec![sub],
                    }
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![if at.is_empty() {
            "<root>".into()
        } else {
            at.into()
        }],
    }
}

/// The metadata of a checkpoint written by [`save_state`] (memories other than the PCN).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateMeta {
    format: u32,
    identity: String,
    /// Epochs finished.
    epochs: usize,
    /// Whatever the memory needs besides tensors (its config, its loss curve, ...).
    payload: serde_json::Value,
    tensors: String,
    /// Training seconds of every run up to this state (0 in states of older code).
    #[serde(default)]
    train_seconds: f64,
}

/// Saves a training state for a memory other than the PCN, as atomically as the PCN's (tensor
/// file first under a new name, then the JSON renamed over the old one, then older tensor
/// files removed): after `epochs` finished epochs, `payload` (any JSON: the config, the curve)
/// and the named `tensors`.
pub fn save_state(
    policy: &CheckpointPolicy,
    epochs: usize,
    payload: &serde_json::Value,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    commit(policy, epochs, tensors, |tensors| {
        let meta = StateMeta {
            format: FORMAT,
            identity: policy.identity.clone(),
            epochs,
            payload: payload.clone(),
            tensors,
            train_seconds: policy.training_seconds(),
        };
        serde_json::to_vec(&meta).expect("checkpoint metadata serialises")
    })
}

/// A state saved by [`save_state`].
#[derive(Debug, Clone)]
pub struct SavedState {
    /// Epochs finished.
    pub epochs: usize,
    /// The payload given to [`save_state`].
    pub payload: serde_json::Value,
    /// The named tensors, on the device asked for.
    pub tensors: HashMap<String, Tensor>,
}

/// Reads the state [`save_state`] wrote for `policy`, onto `device`. `Ok(None)`: there is
/// none. An error names the file and why it cannot be used (another identity or format,
/// unreadable, tensor file missing); the caller then removes it and starts over.
pub fn load_state(policy: &CheckpointPolicy, device: &Device) -> Result<Option<SavedState>> {
    let Some(meta) = open_meta::<StateMeta>(policy)? else {
        return Ok(None);
    };
    let tensors = open_tensors(policy, &meta.tensors, device)?;
    policy.resumed_after(meta.train_seconds);
    Ok(Some(SavedState {
        epochs: meta.epochs,
        payload: meta.payload,
        tensors,
    }))
}

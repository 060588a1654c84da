//! The one place where the kernel is chosen: each operation whose implementation depends on the
//! kernel is a method of [`Exec`], implemented by the reference kernel
//! ([`super::reference::Reference`]) and the fused CPU kernel ([`super::fused::Fused`]); the
//! public methods of [`Pcn`] do what is common and call [`Pcn::exec`]'s implementation.

use super::*;

/// The kernel-dependent operations.
pub(super) trait Exec {
    /// Training-time inference on `x` in place (sensory layer clamped).
    fn infer(&self, pcn: &Pcn, x: &mut ValueNodes) -> Result<InferenceInfo>;
    /// One weight update at the state `x`, whose sensory layer holds the data.
    fn learn(&self, pcn: &mut Pcn, x: &ValueNodes) -> Result<()>;
    /// Inference from `x` then one weight update (one iteration of Alg. 1).
    fn train_step(&self, pcn: &mut Pcn, x: ValueNodes) -> Result<(InferenceInfo, ValueNodes)>;
    /// The epochs `lp` asks for over `batches` (with the value nodes `kept` of a resumed run),
    /// checkpointing where `lp` says so.
    fn train_epochs(
        &self,
        pcn: &mut Pcn,
        batches: &[Tensor],
        kept: Vec<Option<Vec<Tensor>>>,
        lp: &mut EpochLoop<'_>,
        on_epoch: &mut dyn FnMut(&EpochStats),
    ) -> Result<()>;
    /// `iterations` applications of the recall map F from the cues `c`.
    fn recall_noisy(
        &self,
        pcn: &Pcn,
        c: Tensor,
        rng: &mut ChaCha8Rng,
        relaxation: &InferenceConfig,
        iterations: usize,
    ) -> Result<(Tensor, RecallInfo)>;
    /// Relaxation from `x` with the sensory pixels where `free` is 1 free; returns the sensory
    /// values.
    fn recall_partial(
        &self,
        pcn: &Pcn,
        x: ValueNodes,
        free: &Tensor,
        rule: FreeRule,
        relaxation: &InferenceConfig,
    ) -> Result<(Tensor, RecallInfo)>;
    /// Keeps Adam moments read from a checkpoint where this kernel keeps them.
    fn restore_adam(&self, pcn: &mut Pcn, step: i32, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()>;
}

impl Pcn {
    /// The implementation of the kernel chosen ([`Pcn::set_kernel`]): the fused CPU kernel
    /// (with or without the Gram identity) on a CPU, the reference kernel's candle operations
    /// (with the Gram identity where [`Pcn::gram_applies`]) otherwise.
    pub(super) fn exec(&self) -> &'static dyn Exec {
        if matches!(self.kernel, Kernel::Fused | Kernel::FusedDirect) && self.device.is_cpu() {
            &fused::Fused
        } else {
            &reference::Reference
        }
    }
}

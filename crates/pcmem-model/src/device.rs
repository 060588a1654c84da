//! Device names on the command line and in code: `cpu` or `cuda:N`.
//!
//! ```
//! let cpu = pcmem_model::device::parse("cpu")?;
//! assert!(cpu.is_cpu());
//! // Without the `cuda` feature (or without a GPU) a CUDA device is an error that says why.
//! if !pcmem_model::device::cuda_compiled() {
//!     let err = pcmem_model::device::parse("cuda:0").unwrap_err();
//!     assert!(err.to_string().contains("--features cuda"));
//! }
//! assert!(pcmem_model::device::parse("gpu").is_err());
//! # Ok::<(), pcmem_model::PcnError>(())
//! ```

use candle_core::Device;

use crate::error::{PcnError, Result};

/// Whether this build carries the CUDA backend (the `cuda` feature).
pub fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// Opens the device named `cpu` or `cuda:N` (`cuda` alone is `cuda:0`). The error names the
/// device and what to do: build with the `cuda` feature, or check that a GPU is present.
pub fn parse(name: &str) -> Result<Device> {
    let bad = |reason: String| PcnError::Device {
        name: name.to_string(),
        reason,
    };
    let ordinal = match name.trim() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(bad("expected `cpu` or `cuda:N`, e.g. `cuda:0`".into())),
        },
    };
    if !cuda_compiled() {
        return Err(bad(
            "this binary was built without the CUDA backend; build with `--features cuda` \
             (README, \"CUDA\")"
                .into(),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        bad(format!(
            "could not open GPU {ordinal} ({e}); is a GPU present and are the CUDA libraries on \
             LD_LIBRARY_PATH (README, \"CUDA\")?"
        ))
    })
}

/// The canonical name of `device` (`cpu`, `cuda:N`), as written into run records.
pub fn name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => match device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            _ => "cuda".into(),
        },
        Device::Metal(_) => "metal".into(),
    }
}

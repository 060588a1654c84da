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
             (docs/cuda.md in the pcmem repository)"
                .into(),
        ));
    }
    // With runtime loading (docs/cuda.md) cudarc panics when libcuda is missing: turn that
    // into the same error as any other failure to open the device, without the panic message.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(hook);
    let reason = match opened {
        Ok(Ok(device)) => {
            quiet_events(&device);
            return Ok(device);
        }
        Ok(Err(e)) => e.to_string(),
        Err(panic) => panic
            .downcast_ref::<String>()
            .map(|m| m.split(" - ").next().unwrap_or(m).to_string())
            .or_else(|| panic.downcast_ref::<&str>().map(|m| m.to_string()))
            .unwrap_or_else(|| "the CUDA driver library could not be loaded".into()),
    };
    Err(bad(format!(
        "could not open GPU {ordinal} ({reason}); is a GPU present and are the CUDA libraries \
         on LD_LIBRARY_PATH (docs/cuda.md in the pcmem repository)?"
    )))
}

/// Stops cudarc from creating two CUDA events per allocation on `device` (every candle op
/// allocates its output). They only order work across streams, and pcmem issues all of a
/// device's work on candle's one stream, where cudarc records none of them anyway: creating and
/// destroying them is pure overhead on every operation.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)] // cudarc marks this switch unsafe; the safety argument is below
fn quiet_events(device: &Device) {
    if let Device::Cuda(d) = device {
        // SAFETY: no second stream is ever created on this context (see above), so no tensor
        // is used on a stream other than the one that allocated it.
        unsafe { d.disable_event_tracking() }
    }
}

#[cfg(not(feature = "cuda"))]
fn quiet_events(_: &Device) {}

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

//! What SIGTERM, SIGINT and SIGUSR1 do: with checkpoints a grid run saves and stops (exit 4),
//! without them the process ends at once.

/// Raised by SIGTERM, SIGINT or SIGUSR1 (a scheduler's warning before its time limit, or
/// Ctrl-C): grid runs then checkpoint and stop. A second such signal ends the process at once.
pub(crate) fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    static FLAG: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
        std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT, SIGUSR1] {
            // Order matters: the conditional exit sees the flag before this signal raises it.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
    .clone()
}

/// Without checkpoints there is nothing to save: SIGTERM, SIGINT and SIGUSR1 end the process
/// at once with exit 4 (run the same command again: finished cells are kept).
pub(crate) fn stop_at_once() {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let raised = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    for sig in [SIGTERM, SIGINT, SIGUSR1] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 4, raised.clone());
    }
}

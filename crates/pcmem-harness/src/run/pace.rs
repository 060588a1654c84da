//! The pace of a training cell in its log lines: epochs per second since this process saw its
//! first epoch (after a resume, the checkpoint's epochs and the set-up time do not count), and
//! the time left to the epoch limit at that pace, an upper bound (early stopping may end the
//! cell sooner).

use crate::left::duration;

/// The first epoch this process saw finish, and when (seconds since the cell started here).
#[derive(Debug, Default)]
pub(super) struct Pace {
    first: Option<(usize, f64)>,
}

impl Pace {
    /// Notes that `epoch` of at most `max_epochs` finished `seconds` after the cell started;
    /// returns `0.0940 epochs/s, at most 8.6 h to the epoch limit` once a second epoch has been
    /// seen (`None` before: one epoch gives no rate).
    pub(super) fn observe(
        &mut self,
        epoch: usize,
        max_epochs: usize,
        seconds: f64,
    ) -> Option<String> {
        let &mut (e0, s0) = self.first.get_or_insert((epoch, seconds));
        if epoch <= e0 || seconds <= s0 {
            return None;
        }
        let rate = (epoch - e0) as f64 / (seconds - s0);
        let left = max_epochs.saturating_sub(epoch) as f64 / rate;
        // Three significant digits: 7.78, 0.0940.
        let decimals = (2 - rate.log10().floor() as i32).clamp(0, 6) as usize;
        Some(format!(
            "{rate:.decimals$} epochs/s, at most {} to the epoch limit",
            duration(left)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Pace;

    #[test]
    fn pace_counts_from_the_first_epoch_seen() {
        let mut pace = Pace::default();
        // Resumed at epoch 85: the first epoch seen (86, 31 s in) starts the clock.
        assert_eq!(pace.observe(86, 3000, 31.0), None);
        // 10 epochs in 100 s: 0.1 epochs/s, 2904 epochs left: 29,040 s = 8.1 h.
        assert_eq!(
            pace.observe(96, 3000, 131.0).as_deref(),
            Some("0.100 epochs/s, at most 8.1 h to the epoch limit")
        );
        // At the limit nothing is left.
        assert_eq!(
            pace.observe(3000, 3000, 29_071.0).as_deref(),
            Some("0.100 epochs/s, at most 0 s to the epoch limit")
        );
        // Three significant digits whatever the scale.
        let mut fast = Pace::default();
        fast.observe(0, 3000, 0.0);
        assert_eq!(
            fast.observe(778, 3000, 100.0).as_deref(),
            Some("7.78 epochs/s, at most 5 min to the epoch limit")
        );
    }

    #[test]
    fn no_rate_without_progress() {
        let mut pace = Pace::default();
        assert_eq!(pace.observe(1, 10, 5.0), None);
        assert_eq!(pace.observe(1, 10, 9.0), None);
        assert_eq!(pace.observe(2, 10, 5.0), None);
    }
}

//! Rows copied, total, rate, ETA and lag, as the resource's status and
//! printer columns show them.

use std::time::Duration;

use tokio::time::Instant;

use crate::api::Progress;

/// A copy-rate meter over a sliding window, so the ETA follows the recent
/// rate rather than the average since a throttled start.
#[derive(Debug)]
pub struct Meter {
    samples: std::collections::VecDeque<(Instant, u64)>,
    window: Duration,
}

impl Meter {
    pub fn new(window: Duration) -> Meter {
        Meter { samples: Default::default(), window }
    }

    /// Records the running total of rows copied at `at`.
    pub fn record(&mut self, at: Instant, rows_copied: u64) {
        self.samples.push_back((at, rows_copied));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| at.duration_since(*t) > self.window) {
            self.samples.pop_front();
        }
    }

    pub fn rows_per_second(&self) -> u64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, r0)), Some((t1, r1))) if t1 > t0 => {
                (r1.saturating_sub(*r0) as f64 / t1.duration_since(*t0).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }
}

/// The report for a copy of `copied` out of an estimated `total` rows.
/// Table statistics can be off either way, so the total is never shown below
/// what was already copied.
pub fn copy_progress(copied: u64, estimated_total: u64, rate: u64, throttled: Option<String>) -> Progress {
    let total = estimated_total.max(copied);
    let percent = (copied * 100).checked_div(total).map_or(100, |p| p.min(100) as i32);
    let eta_seconds = (rate > 0).then(|| (total - copied).div_ceil(rate) as i64);
    Progress {
        rows_copied: copied as i64,
        rows_total: total as i64,
        percent,
        rows_per_second: rate as i64,
        eta_seconds,
        lag_seconds: None,
        throttled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_follows_the_window() {
        let mut m = Meter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        m.record(t0, 0);
        m.record(t0 + Duration::from_secs(5), 5000);
        assert_eq!(m.rows_per_second(), 1000);
        m.record(t0 + Duration::from_secs(20), 5000 + 30_000);
        m.record(t0 + Duration::from_secs(25), 5000 + 60_000);
        assert_eq!(m.rows_per_second(), 6000, "old samples fall out of the window");
    }

    #[test]
    fn eta_and_percent() {
        let p = copy_progress(250, 1000, 50, None);
        assert_eq!((p.percent, p.eta_seconds, p.rows_total), (25, Some(15), 1000));
        let p = copy_progress(1200, 1000, 0, Some("src: busy".into()));
        assert_eq!((p.percent, p.eta_seconds, p.rows_total), (100, None, 1200), "stats underestimated");
        assert_eq!(p.throttled.as_deref(), Some("src: busy"));
        assert_eq!(copy_progress(0, 0, 0, None).percent, 100);
    }
}

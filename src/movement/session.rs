//! Settings of the engine's and the kinds' own sessions.

use std::time::Duration;

/// The settings of a session that takes table locks: its lock waits are
/// bounded by `lock_wait`, and if its operator vanishes (a node that dies
/// sends no FIN) the server closes it, and drops its locks, after a short
/// idle time instead of the default eight hours. A healthy holder is never
/// idle that long: it holds a lock for at most `lock_wait`.
pub fn lock_session_settings(lock_wait: Duration) -> String {
    let wait = lock_wait.as_secs().max(1);
    format!("SET SESSION lock_wait_timeout = {wait}, wait_timeout = {}", 2 * wait + 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locking_session_dies_soon_after_its_operator() {
        assert_eq!(
            lock_session_settings(Duration::from_secs(5)),
            "SET SESSION lock_wait_timeout = 5, wait_timeout = 20"
        );
        assert_eq!(
            lock_session_settings(Duration::from_millis(10)),
            "SET SESSION lock_wait_timeout = 1, wait_timeout = 12",
            "never zero, which would mean no bound"
        );
    }
}

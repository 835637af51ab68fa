//! `SWITCHYARD_FAILPOINT=<name>:<ms>`: the e2e suite's way to hold the
//! operator at one point for `ms` milliseconds, long enough to kill it
//! there. Unset in production. The points:
//!
//! - `cutover-hold-ms`: an OnlineDDL cut-over, right after it took the lock;
//! - `retired-hold-ms`: an OnlineDDL after the swap, once the original has
//!   its old-table name and before the status records it;
//! - `switch-hold:<SubStep>`: a Migration or ShardSplit switch, on entering
//!   that sub-step.

use std::time::Duration;

pub fn hold(name: &str) -> Option<Duration> {
    parse(&std::env::var("SWITCHYARD_FAILPOINT").ok()?, name)
}

fn parse(value: &str, name: &str) -> Option<Duration> {
    value.strip_prefix(name)?.strip_prefix(':')?.parse().ok().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_point_holds() {
        assert_eq!(parse("cutover-hold-ms:8000", "cutover-hold-ms"), Some(Duration::from_secs(8)));
        assert_eq!(parse("switch-hold:Fence:300", "switch-hold:Fence"), Some(Duration::from_millis(300)));
        assert_eq!(parse("switch-hold:Fence:300", "switch-hold:FenceX"), None);
        assert_eq!(parse("switch-hold:CatchUp:300", "switch-hold:Fence"), None);
        assert_eq!(parse("cutover-hold-ms:soon", "cutover-hold-ms"), None);
    }
}

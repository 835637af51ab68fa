//! The steps of a split, the sub-steps of its switch, and the pure rules
//! they follow: the router the engine uses, the AUTO_INCREMENT ranges, when
//! to retire. The runner observes, asks here, and acts. `docs/shard-split.md`
//! draws the same states.

use std::time::Duration;

use super::api::{Algorithm, KeyRange, ShardSplitSpec, ShardSplitStatus};
use crate::movement::RowRouter;
use crate::work::attempts::{self, Decision, Policy, Record};
use crate::work::gate::Wording;

/// Held while a switch attempt (either way) is in flight: one side may be
/// fenced, and a deletion must take that fence down first. The fence of
/// dual-write itself stays on purpose: the old table must not take
/// application writes once nobody keeps it complete.
pub const SWITCH_FINALIZER: &str = "switchyard.io/shardsplit-fence";

/// `status.step`. The string forms are the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Accepted; the checks against the server run (and re-run while they
    /// fail).
    Pending,
    CreatingShards,
    /// Rows copied from a consistent snapshot through the router.
    Copying,
    /// Changes applied from the binary log; a per-shard checksum at the end.
    Syncing,
    /// In sync and checksummed; the switch into dual-write may start.
    ReadyToComplete,
    /// Ready, held by `spec.postponeCompletion`, still in sync.
    Postponed,
    /// A switch into dual-write is in flight.
    Switching,
    /// Applications use the shards; the reverse sync keeps the old table
    /// complete.
    DualWrite,
    /// A switch back to the old table is in flight.
    RollingBack,
    /// Applications use the old table again; the shards are fenced and kept
    /// in sync, held by `spec.rollback`.
    RolledBack,
    Retiring,
    Complete,
    Cancelled,
    Failed,
}

const ALL: [Step; 14] = [
    Step::Pending,
    Step::CreatingShards,
    Step::Copying,
    Step::Syncing,
    Step::ReadyToComplete,
    Step::Postponed,
    Step::Switching,
    Step::DualWrite,
    Step::RollingBack,
    Step::RolledBack,
    Step::Retiring,
    Step::Complete,
    Step::Cancelled,
    Step::Failed,
];

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Pending => "Pending",
            Step::CreatingShards => "CreatingShards",
            Step::Copying => "Copying",
            Step::Syncing => "Syncing",
            Step::ReadyToComplete => "ReadyToComplete",
            Step::Postponed => "Postponed",
            Step::Switching => "Switching",
            Step::DualWrite => "DualWrite",
            Step::RollingBack => "RollingBack",
            Step::RolledBack => "RolledBack",
            Step::Retiring => "Retiring",
            Step::Complete => "Complete",
            Step::Cancelled => "Cancelled",
            Step::Failed => "Failed",
        }
    }

    /// Unknown text reads as Pending, whose checks stop at anything already
    /// created instead of redoing it.
    pub fn parse(s: Option<&str>) -> Step {
        ALL.into_iter().find(|st| Some(st.as_str()) == s).unwrap_or(Step::Pending)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Step::Complete | Step::Cancelled | Step::Failed)
    }

    /// Applications may be writing to the shards: the split can no longer
    /// simply be cancelled.
    pub fn is_dual_write(self) -> bool {
        matches!(self, Step::DualWrite | Step::RollingBack | Step::RolledBack | Step::Retiring)
    }
}

/// Which way a switch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Old table → shards: routing becomes `dual-write`.
    DualWrite,
    /// Shards → old table (a rollback): routing becomes `source`.
    Source,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::DualWrite => "DualWrite",
            Direction::Source => "Source",
        }
    }

    pub fn parse(s: Option<&str>) -> Direction {
        if s == Some("Source") { Direction::Source } else { Direction::DualWrite }
    }

    /// The step an attempt in this direction is in.
    pub fn attempt_step(self) -> Step {
        match self {
            Direction::DualWrite => Step::Switching,
            Direction::Source => Step::RollingBack,
        }
    }

    /// Where a failed attempt goes back to.
    pub fn before(self) -> Step {
        match self {
            Direction::DualWrite => Step::ReadyToComplete,
            Direction::Source => Step::DualWrite,
        }
    }
}

/// `status.switch.subStep`, in the order an attempt takes them. The fenced
/// side is the one applications leave: the old table going forward, the
/// shards on a rollback. Before [`SubStep::FlipRouting`] an attempt is
/// undone (that side unfenced); from it on, it rolls forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubStep {
    Fence,
    CatchUp,
    Checksum,
    /// Forward: the shards' AUTO_INCREMENT ranges and the reverse sync's
    /// start positions. Rollback: the forward sync's start position.
    Prepare,
    FlipRouting,
    StartSync,
}

impl SubStep {
    pub const ALL: [SubStep; 6] = [
        SubStep::Fence,
        SubStep::CatchUp,
        SubStep::Checksum,
        SubStep::Prepare,
        SubStep::FlipRouting,
        SubStep::StartSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubStep::Fence => "Fence",
            SubStep::CatchUp => "CatchUp",
            SubStep::Checksum => "Checksum",
            SubStep::Prepare => "Prepare",
            SubStep::FlipRouting => "FlipRouting",
            SubStep::StartSync => "StartSync",
        }
    }

    /// Unknown text reads as the first sub-step: an attempt of unknown
    /// progress is undone, never rolled forward blind.
    pub fn parse(s: Option<&str>) -> Option<SubStep> {
        let s = s?;
        Some(SubStep::ALL.into_iter().find(|st| st.as_str() == s).unwrap_or(SubStep::Fence))
    }

    pub fn is_committed(self) -> bool {
        self >= SubStep::FlipRouting
    }
}

/// What a resumed task finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    Nothing,
    /// Unfence the side that was fenced, count the attempt as failed.
    Undo(Direction),
    RollForward(Direction, SubStep),
}

pub fn resume(status: &ShardSplitStatus) -> Resume {
    let step = Step::parse(status.step.as_deref());
    if !matches!(step, Step::Switching | Step::RollingBack) {
        return Resume::Nothing;
    }
    let direction = if step == Step::RollingBack { Direction::Source } else { Direction::DualWrite };
    match SubStep::parse(status.switch.as_ref().and_then(|s| s.sub_step.as_deref())) {
        Some(s) if s.is_committed() => Resume::RollForward(direction, s),
        _ => Resume::Undo(direction),
    }
}

/// Whether `spec.cancel` can stop the split here: not once applications
/// may be writing to the shards (a flip committed, dual-write, a rollback
/// or retirement under way). After a completed rollback it can.
pub fn cancellable(step: Step, resume: Resume) -> bool {
    !matches!(resume, Resume::RollForward(..))
        && !matches!(step, Step::DualWrite | Step::RollingBack | Step::Retiring)
        && !step.is_terminal()
}

/// The switch gate for `direction`: postponing holds only the way forward;
/// a rollback is never postponed (it is what the user asked for).
pub fn gate(
    spec: &ShardSplitSpec,
    status: &ShardSplitStatus,
    direction: Direction,
    lag: Duration,
    now: jiff::Timestamp,
) -> Decision {
    let policy = Policy::of(&spec.switch, direction == Direction::DualWrite && spec.postpone_completion);
    let r = status.switch.clone().unwrap_or_default();
    // Attempts count per direction: a failed rollback does not use up the
    // way forward.
    let same_way = Direction::parse(r.direction.as_deref()) == direction;
    let record =
        if same_way { Record::of(&r.record) } else { Record { retry: spec.switch.retry, ..Record::default() } };
    attempts::decide(&policy, &record, lag, now)
}

pub const WORDING: Wording = Wording {
    action: "switch",
    retry_field: "spec.switch.retry",
    exhausted: "SwitchAttemptsExhausted",
    rearmed: "SwitchRearmed",
    postponed: "in sync; spec.postponeCompletion holds the switch into dual-write",
    trailing: "the copy",
};

/// The engine's router for the rule, and for each engine target (in router
/// order) the shard number it is. Ranges are sorted by key, so their shards
/// may come in any order.
pub fn router(spec: &ShardSplitSpec) -> Result<(RowRouter, Vec<usize>), String> {
    let column = spec.rule.column.clone();
    let n = spec.rule.shards.max(0) as usize;
    match spec.rule.algorithm {
        Algorithm::Hash => Ok((RowRouter::Hash { column }, (0..n).collect())),
        Algorithm::Mod => Ok((RowRouter::Modulo { column }, (0..n).collect())),
        Algorithm::Range => {
            let mut sorted: Vec<&KeyRange> = spec.rule.ranges.iter().collect();
            let from = |r: &KeyRange| r.from.as_deref().map(parse_bound).transpose();
            for r in &sorted {
                from(r)?;
            }
            sorted.sort_by_key(|r| from(r).ok().flatten().unwrap_or(i64::MIN));
            let upper_bounds = sorted
                .iter()
                .take(sorted.len().saturating_sub(1))
                .map(|r| r.to.as_deref().map(parse_bound).unwrap_or_else(|| Err("a range lacks `to`".into())))
                .collect::<Result<Vec<i64>, String>>()?;
            let order = sorted.iter().map(|r| r.shard.max(0) as usize).collect();
            Ok((RowRouter::Ranges { column, upper_bounds }, order))
        }
    }
}

pub fn parse_bound(s: &str) -> Result<i64, String> {
    s.trim().parse().map_err(|_| format!("range bound {s:?} is not an integer"))
}

/// The largest value an integer column type holds (`bigint unsigned`,
/// `int(11)`, …); None for anything else.
pub fn integer_max(column_type: &str) -> Option<i128> {
    let t = column_type.to_ascii_lowercase();
    let unsigned = t.contains("unsigned");
    let bits = match t.split(['(', ' ']).next()? {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        "bigint" => 64,
        _ => return None,
    };
    Some(if unsigned { (1i128 << bits) - 1 } else { (1i128 << (bits - 1)) - 1 })
}

/// Below this many ids per shard the split refuses to hand out ranges: the
/// first shard would run dry within days on a busy table.
pub const MIN_STRIDE: i128 = 1000;

/// Disjoint AUTO_INCREMENT starts, one per shard, above every id in use:
/// shard i starts at `base + i·stride`. Err when the column type leaves too
/// little room.
pub fn auto_increment_starts(base: i128, max: i128, shards: usize) -> Result<(i128, Vec<i128>), String> {
    let shards = shards.max(1) as i128;
    let stride = (max - base + 1) / shards;
    if stride < MIN_STRIDE {
        return Err(format!(
            "the AUTO_INCREMENT column has room for {} more ids, too few to give {shards} shards {MIN_STRIDE} each",
            (max - base + 1).max(0)
        ));
    }
    Ok((stride, (0..shards).map(|i| base + i * stride).collect()))
}

/// Whether dual-write has lasted long enough, or the user asked.
pub fn retire_due(spec: &ShardSplitSpec, since: Option<jiff::Timestamp>, now: jiff::Timestamp) -> bool {
    if spec.retire.now {
        return true;
    }
    let Some(since) = since else { return false };
    now.duration_since(since).as_secs() >= spec.retire.after_seconds.max(0)
}

/// `_<table>_retired_<timestamp>`, cut to MySQL's 64 characters.
pub fn retired_name(table: &str, at: jiff::Timestamp) -> String {
    let stamp = at.strftime("%Y%m%d%H%M%S").to_string();
    let room = 64 - "_".len() - "_retired_".len() - stamp.len();
    let keep: String = table.chars().take(room).collect();
    format!("_{keep}_retired_{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shardsplit::api::*;

    fn spec(algorithm: Algorithm, ranges: Vec<KeyRange>) -> ShardSplitSpec {
        ShardSplitSpec {
            source: TableRef { cluster: "db".into(), database: "shop".into(), table: "orders".into() },
            rule: ShardRule { column: "customer_id".into(), algorithm, shards: ranges.len().max(4) as i32, ranges },
            targets: ShardTargets {
                list: None,
                template: Some(TargetTemplate { cluster: None, database: None, table: "orders_{shard}".into() }),
            },
            routing: Routing { config_map: "orders-routing".into() },
            postpone_completion: false,
            rollback: false,
            retire: Retire::default(),
            throttle: Default::default(),
            switch: Default::default(),
            cancel: false,
        }
    }

    fn status(step: &str, sub: Option<&str>) -> ShardSplitStatus {
        ShardSplitStatus {
            step: Some(step.into()),
            switch: Some(SwitchReport { sub_step: sub.map(Into::into), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn steps_round_trip() {
        assert_eq!(ALL.map(Step::as_str), crate::shardsplit::api::STEPS, "the schema lists every step");
        for s in ALL {
            assert_eq!(Step::parse(Some(s.as_str())), s);
        }
        assert_eq!(Step::parse(Some("Teleporting")), Step::Pending);
        assert!(Step::Complete.is_terminal() && !Step::DualWrite.is_terminal());
        assert!(Step::RolledBack.is_dual_write() && !Step::Switching.is_dual_write());
    }

    #[test]
    fn a_restart_undoes_before_the_flip_and_finishes_after_it() {
        assert_eq!(resume(&status("DualWrite", None)), Resume::Nothing);
        assert_eq!(resume(&status("Switching", Some("Checksum"))), Resume::Undo(Direction::DualWrite));
        assert_eq!(resume(&status("Switching", Some("Prepare"))), Resume::Undo(Direction::DualWrite));
        assert_eq!(resume(&status("RollingBack", Some("Fence"))), Resume::Undo(Direction::Source));
        assert_eq!(
            resume(&status("Switching", Some("FlipRouting"))),
            Resume::RollForward(Direction::DualWrite, SubStep::FlipRouting)
        );
        assert_eq!(
            resume(&status("RollingBack", Some("StartSync"))),
            Resume::RollForward(Direction::Source, SubStep::StartSync)
        );
        assert_eq!(resume(&status("Switching", Some("Garbled"))), Resume::Undo(Direction::DualWrite));
        assert_eq!(resume(&status("Switching", None)), Resume::Undo(Direction::DualWrite));
    }

    #[test]
    fn cancel_stops_the_split_only_while_applications_use_the_old_table() {
        for step in [Step::Pending, Step::Copying, Step::Postponed, Step::RolledBack] {
            assert!(cancellable(step, Resume::Nothing), "{step:?}");
        }
        assert!(cancellable(Step::Switching, Resume::Undo(Direction::DualWrite)));
        assert!(!cancellable(Step::Switching, Resume::RollForward(Direction::DualWrite, SubStep::FlipRouting)));
        for step in [Step::DualWrite, Step::RollingBack, Step::Retiring, Step::Complete] {
            assert!(!cancellable(step, Resume::Nothing), "{step:?}");
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn postponing_holds_only_the_way_forward_and_attempts_count_per_direction() {
        let mut s = spec(Algorithm::Hash, vec![]);
        s.postpone_completion = true;
        let mut st = status("ReadyToComplete", None);
        assert_eq!(gate(&s, &st, Direction::DualWrite, Duration::ZERO, now()), Decision::Postponed);
        assert_eq!(gate(&s, &st, Direction::Source, Duration::ZERO, now()), Decision::Attempt);
        s.postpone_completion = false;
        st.switch = Some(SwitchReport {
            record: crate::api::AttemptRecord { attempts: s.switch.max_attempts, ..Default::default() },
            direction: Some("DualWrite".into()),
            ..Default::default()
        });
        assert_eq!(gate(&s, &st, Direction::DualWrite, Duration::ZERO, now()), Decision::Exhausted);
        assert_eq!(gate(&s, &st, Direction::Source, Duration::ZERO, now()), Decision::Attempt);
        assert!(matches!(
            gate(&s, &status("x", None), Direction::Source, Duration::from_secs(9), now()),
            Decision::LagTooHigh { .. }
        ));
    }

    #[test]
    fn range_routers_sort_by_key_and_remember_the_shards() {
        let r = |shard, from: Option<&str>, to: Option<&str>| KeyRange {
            shard,
            from: from.map(Into::into),
            to: to.map(Into::into),
        };
        let s = spec(Algorithm::Range, vec![r(1, Some("1000"), None), r(0, None, Some("1000"))]);
        let (r0, order) = router(&s).unwrap();
        assert_eq!(r0, RowRouter::Ranges { column: "customer_id".into(), upper_bounds: vec![1000] });
        assert_eq!(order, vec![0, 1]);
        let s = spec(Algorithm::Range, vec![r(0, Some("0"), None), r(1, None, Some("0"))]);
        assert_eq!(router(&s).unwrap().1, vec![1, 0], "the lowest keys belong to shard 1");
        let s = spec(Algorithm::Range, vec![r(0, None, Some("m")), r(1, Some("m"), None)]);
        assert!(router(&s).unwrap_err().contains("not an integer"));
        let hashed = router(&spec(Algorithm::Hash, vec![])).unwrap();
        assert_eq!(hashed, (RowRouter::Hash { column: "customer_id".into() }, vec![0, 1, 2, 3]));
    }

    #[test]
    fn auto_increment_ranges_are_disjoint_and_refused_when_too_small() {
        assert_eq!(integer_max("int(11)"), Some(2_147_483_647));
        assert_eq!(integer_max("bigint(20) unsigned"), Some(u64::MAX as i128));
        assert_eq!(integer_max("tinyint unsigned"), Some(255));
        assert_eq!(integer_max("varchar(10)"), None);
        let (stride, starts) = auto_increment_starts(1001, 2_147_483_647, 4).unwrap();
        assert_eq!(starts, vec![1001, 1001 + stride, 1001 + 2 * stride, 1001 + 3 * stride]);
        assert!(1001 + 4 * stride - 1 <= 2_147_483_647, "the last range fits the type");
        let e = auto_increment_starts(100, 255, 4).unwrap_err();
        assert!(e.contains("room for 156 more ids"), "{e}");
    }

    #[test]
    fn retirement_waits_for_after_seconds_unless_asked() {
        let mut s = spec(Algorithm::Hash, vec![]);
        s.retire.after_seconds = 60;
        let t0: jiff::Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
        assert!(!retire_due(&s, None, t0));
        assert!(!retire_due(&s, Some(t0), t0 + jiff::SignedDuration::from_secs(59)));
        assert!(retire_due(&s, Some(t0), t0 + jiff::SignedDuration::from_secs(60)));
        s.retire.now = true;
        assert!(retire_due(&s, None, t0));
        assert_eq!(retired_name("orders", t0), "_orders_retired_20261121100000");
        assert_eq!(retired_name(&"x".repeat(64), t0).len(), 64);
    }
}

//! The steps of a migration and the sub-steps of its switch. Pure: the
//! runner observes, asks here, and acts. `docs/migration.md` draws the same
//! states.

use super::api::{MigrationSpec, MigrationStatus};
use crate::work::attempts::{self, Decision, Policy, Record};
use crate::work::gate::Wording;

/// Held while a switch attempt is in flight: the source may be fenced, and
/// a deletion must take the fence down first.
pub const FENCE_FINALIZER: &str = "switchyard.io/migration-fence";

/// `status.step`. The string forms are the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Accepted; the pre-flight checks run (and re-run while they fail).
    Pending,
    /// Target tables created; rows copied from a consistent snapshot.
    SeedCopy,
    /// Changes applied from the source's binary log; one checksum at the end.
    Incremental,
    /// Accounts and grants copied.
    Accounts,
    /// In sync with the accounts in place; the switch may start.
    ReadyToComplete,
    /// Ready, held by `spec.postponeCompletion`, still in sync.
    Postponed,
    /// An attempt is in flight; `status.switch.subStep` says where.
    Switching,
    Complete,
    Cancelled,
    Failed,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Pending => "Pending",
            Step::SeedCopy => "SeedCopy",
            Step::Incremental => "Incremental",
            Step::Accounts => "Accounts",
            Step::ReadyToComplete => "ReadyToComplete",
            Step::Postponed => "Postponed",
            Step::Switching => "Switching",
            Step::Complete => "Complete",
            Step::Cancelled => "Cancelled",
            Step::Failed => "Failed",
        }
    }

    /// Unknown text (an older or newer operator's) reads as Pending, whose
    /// checks stop at anything already created instead of redoing it.
    pub fn parse(s: Option<&str>) -> Step {
        ALL.into_iter().find(|st| Some(st.as_str()) == s).unwrap_or(Step::Pending)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Step::Complete | Step::Cancelled | Step::Failed)
    }
}

const ALL: [Step; 10] = [
    Step::Pending,
    Step::SeedCopy,
    Step::Incremental,
    Step::Accounts,
    Step::ReadyToComplete,
    Step::Postponed,
    Step::Switching,
    Step::Complete,
    Step::Cancelled,
    Step::Failed,
];

/// `status.switch.subStep`, in the order an attempt takes them. Before
/// [`SubStep::SwitchDataSource`] an attempt can be undone (the source is
/// unfenced); from it on, it only rolls forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubStep {
    PermissionCheck,
    Fence,
    CatchUp,
    Checksum,
    SwitchDataSource,
    KillConnections,
    StopIncremental,
    SourceReadOnly,
}

impl SubStep {
    pub const ALL: [SubStep; 8] = [
        SubStep::PermissionCheck,
        SubStep::Fence,
        SubStep::CatchUp,
        SubStep::Checksum,
        SubStep::SwitchDataSource,
        SubStep::KillConnections,
        SubStep::StopIncremental,
        SubStep::SourceReadOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubStep::PermissionCheck => "PermissionCheck",
            SubStep::Fence => "Fence",
            SubStep::CatchUp => "CatchUp",
            SubStep::Checksum => "Checksum",
            SubStep::SwitchDataSource => "SwitchDataSource",
            SubStep::KillConnections => "KillConnections",
            SubStep::StopIncremental => "StopIncremental",
            SubStep::SourceReadOnly => "SourceReadOnly",
        }
    }

    /// Unknown text reads as the first sub-step: an attempt of unknown
    /// progress is undone, never rolled forward blind.
    pub fn parse(s: Option<&str>) -> Option<SubStep> {
        let s = s?;
        Some(SubStep::ALL.into_iter().find(|st| st.as_str() == s).unwrap_or(SubStep::PermissionCheck))
    }

    /// From here on the attempt rolls forward.
    pub fn is_committed(self) -> bool {
        self >= SubStep::SwitchDataSource
    }

    pub fn next(self) -> Option<SubStep> {
        SubStep::ALL.into_iter().find(|s| *s > self)
    }
}

/// What a stopped task finds when it resumes an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// No attempt was in flight.
    Nothing,
    /// Undo the fence and count the attempt as failed.
    Undo,
    /// Carry on from this sub-step.
    RollForward(SubStep),
}

pub fn resume(status: &MigrationStatus) -> Resume {
    if Step::parse(status.step.as_deref()) != Step::Switching {
        return Resume::Nothing;
    }
    match SubStep::parse(status.switch.as_ref().and_then(|s| s.sub_step.as_deref())) {
        Some(s) if s.is_committed() => Resume::RollForward(s),
        _ => Resume::Undo,
    }
}

/// The switch gate: postpone, attempts, lag, backoff. `status.switch` is
/// already re-armed ([`attempts::rearm`]) under the current `spec.switch.retry`.
pub fn switch(
    spec: &MigrationSpec,
    status: &MigrationStatus,
    lag: std::time::Duration,
    now: jiff::Timestamp,
) -> Decision {
    let record = status.switch.as_ref().map(|s| Record::of(&s.record)).unwrap_or_default();
    attempts::decide(&Policy::of(&spec.switch.attempts, spec.postpone_completion), &record, lag, now)
}

pub const WORDING: Wording = Wording {
    action: "switch",
    retry_field: "spec.switch.retry",
    exhausted: "SwitchAttemptsExhausted",
    rearmed: "SwitchRearmed",
    postponed: "in sync with the accounts in place; spec.postponeCompletion holds the switch",
    trailing: "the target",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::api::SwitchReport;

    fn switching(sub: &str) -> MigrationStatus {
        MigrationStatus {
            step: Some("Switching".into()),
            switch: Some(SwitchReport { sub_step: Some(sub.into()), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn steps_round_trip() {
        assert_eq!(ALL.map(Step::as_str), crate::migration::api::STEPS, "the schema lists every step");
        for s in ALL {
            assert_eq!(Step::parse(Some(s.as_str())), s);
        }
        assert_eq!(Step::parse(Some("Teleporting")), Step::Pending);
        assert!(Step::Complete.is_terminal() && !Step::Switching.is_terminal());
    }

    #[test]
    fn sub_steps_are_ordered_and_commit_at_the_data_source_switch() {
        for w in SubStep::ALL.windows(2) {
            assert!(w[0] < w[1]);
            assert_eq!(w[0].next(), Some(w[1]));
        }
        assert_eq!(SubStep::SourceReadOnly.next(), None);
        assert!(!SubStep::Checksum.is_committed());
        assert!(SubStep::SwitchDataSource.is_committed());
        assert_eq!(SubStep::parse(Some("Garbled")), Some(SubStep::PermissionCheck));
    }

    #[test]
    fn a_restart_undoes_an_uncommitted_attempt_and_finishes_a_committed_one() {
        assert_eq!(resume(&MigrationStatus::default()), Resume::Nothing);
        assert_eq!(resume(&switching("Fence")), Resume::Undo);
        assert_eq!(resume(&switching("Checksum")), Resume::Undo);
        assert_eq!(resume(&switching("SwitchDataSource")), Resume::RollForward(SubStep::SwitchDataSource));
        assert_eq!(resume(&switching("KillConnections")), Resume::RollForward(SubStep::KillConnections));
        let mut no_sub = switching("x");
        no_sub.switch = None;
        assert_eq!(resume(&no_sub), Resume::Undo, "switching with no record: undo");
    }
}

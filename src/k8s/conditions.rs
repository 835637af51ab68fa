//! Kubernetes Conditions as every Switchyard status carries them.
//!
//! Conditions are stored as a list-map keyed by `type`, so server-side apply
//! merges them entry by entry and other writers' conditions survive.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::Schema;

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// Reason used by every kind when its spec fails the controller's validation.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// A table shape or a server setting that data cannot be moved losslessly with.
pub const REASON_UNSUPPORTED: &str = "Unsupported";

/// The desired state of one condition, before timestamps are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { type_, status, reason: reason.into(), message: message.into() }
    }
}

/// Merges `desired` into `current`. `lastTransitionTime` only moves when the
/// status flips, because clients use it to tell how long a state has lasted.
pub fn merge(current: &[Condition], desired: &[Desired], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let mut out: Vec<Condition> = current.to_vec();
    for d in desired {
        let next = |last: Time| Condition {
            type_: d.type_.to_string(),
            status: d.status.to_string(),
            reason: d.reason.clone(),
            // The API server refuses an empty message in an apply (it arrives as null).
            message: if d.message.is_empty() { d.reason.clone() } else { d.message.clone() },
            observed_generation: generation,
            last_transition_time: last,
        };
        match out.iter_mut().find(|c| c.type_ == d.type_) {
            Some(c) => {
                let last = if c.status == d.status { c.last_transition_time.clone() } else { now.clone() };
                *c = next(last);
            }
            None => out.push(next(now.clone())),
        }
    }
    out
}

/// The current time as a condition timestamp.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// A status that carries conditions and the generation it describes.
pub trait Conditioned: Clone + Default + PartialEq + serde::Serialize {
    fn conditions(&self) -> &[Condition];
    fn set_conditions(&mut self, conditions: Vec<Condition>);
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

/// Implements [`Conditioned`] for status structs with `conditions` and
/// `observed_generation` fields.
#[macro_export]
macro_rules! impl_conditioned {
    ($($status:ty),+ $(,)?) => {$(
        impl $crate::k8s::conditions::Conditioned for $status {
            fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &self.conditions
            }
            fn set_conditions(&mut self, conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>) {
                self.conditions = conditions;
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    )+};
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Schema for `status.conditions`: the upstream Condition schema marked as a
/// list-map keyed by `type`.
pub fn schema(generator: &mut schemars::SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    let obj = schema.ensure_object();
    obj.insert("x-kubernetes-list-type".into(), "map".into());
    obj.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    obj.insert(
        "description".into(),
        "Latest observations of the resource's state, one per type (standard Kubernetes Conditions).".into(),
    );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0 = t("2026-01-01T00:00:00Z");
        let t1 = t("2026-01-01T00:01:00Z");
        let first = merge(&[], &[Desired::new("Ready", FALSE, "Provisioning", "waiting")], Some(1), &t0);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].last_transition_time, t0);

        let same = merge(&first, &[Desired::new("Ready", FALSE, "StillWaiting", "still")], Some(2), &t1);
        assert_eq!(same[0].last_transition_time, t0, "same status keeps its transition time");
        assert_eq!(same[0].reason, "StillWaiting");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge(&same, &[Desired::new("Ready", TRUE, "Ready", "ok")], Some(2), &t1);
        assert_eq!(flipped[0].last_transition_time, t1);
        assert_eq!(find(&flipped, "Ready").unwrap().status, TRUE);
    }

    #[test]
    fn other_conditions_are_kept() {
        let t0 = t("2026-01-01T00:00:00Z");
        let base = merge(&[], &[Desired::new("Healthy", TRUE, "Ok", "")], Some(1), &t0);
        let out = merge(&base, &[Desired::new("Ready", FALSE, "X", "y")], Some(1), &t0);
        assert_eq!(out.len(), 2);
        assert_eq!(find(&out, "Healthy").unwrap().status, TRUE);
        assert_eq!(find(&out, "Ready").unwrap().status, FALSE);
        assert!(find(&out, "Missing").is_none());
    }

    #[test]
    fn schema_is_a_list_map_keyed_by_type() {
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let s = schema(&mut generator);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["x-kubernetes-list-type"], "map");
        assert_eq!(v["x-kubernetes-list-map-keys"][0], "type");
    }
}

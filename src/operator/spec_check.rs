//! The first step of every controller: is the spec usable? The verdict is
//! pure; the controller writes it to status and publishes its Event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::EventType;

use crate::k8s::conditions::{self, Desired, FALSE, REASON_INVALID_SPEC};
use crate::validation::SpecErrors;

/// An Event to publish for a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// The outcome condition (`Ready` or `Succeeded`) for an invalid spec, and the
/// Warning to publish when this is news.
pub fn invalid(outcome: &'static str, errors: &SpecErrors, current: &[Condition]) -> (Desired, Option<Transition>) {
    let message = format!("invalid spec: {errors}");
    let desired = Desired::new(outcome, FALSE, REASON_INVALID_SPEC, message.clone());
    let event = is_news(current, &desired).then(|| Transition {
        type_: EventType::Warning,
        reason: REASON_INVALID_SPEC.into(),
        message,
    });
    (desired, event)
}

/// True when `desired` differs from what the condition already says, so
/// repeated reconciles of an unchanged object publish nothing new.
pub fn is_news(current: &[Condition], desired: &Desired) -> bool {
    conditions::find(current, desired.type_)
        .is_none_or(|c| c.status != desired.status || c.reason != desired.reason || c.message != desired.message)
}

/// A Normal Event for `desired` when it is news.
pub fn normal_if_news(current: &[Condition], desired: &Desired) -> Option<Transition> {
    is_news(current, desired).then(|| Transition {
        type_: EventType::Normal,
        reason: desired.reason.clone(),
        message: desired.message.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn invalid_spec_warns_once() {
        let mut errors = SpecErrors::new();
        errors.add("spec.replicas", "10 is out of range");
        let (desired, event) = invalid("Ready", &errors, &[]);
        assert_eq!(desired.reason, "InvalidSpec");
        assert_eq!(desired.message, "invalid spec: spec.replicas: 10 is out of range");
        assert_eq!(event.as_ref().unwrap().type_, EventType::Warning);

        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let stored = conditions::merge(&[], &[desired], Some(1), &now);
        let (_, again) = invalid("Ready", &errors, &stored);
        assert!(again.is_none(), "same verdict is not news");

        errors.add("spec.primary", "3 does not exist");
        let (_, changed) = invalid("Ready", &errors, &stored);
        assert!(changed.is_some(), "a different problem is news");
    }
}

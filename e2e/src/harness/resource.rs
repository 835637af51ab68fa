//! Reading a Switchyard resource's status the way a user does, through
//! `kubectl get -o json`: its step, its conditions, its Events.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::kubectl::{get_json, kubectl};
use super::wait::{Hopeless, wait_until};

const POLL: Duration = Duration::from_millis(200);

pub fn get(ns: &str, kind: &str, name: &str) -> anyhow::Result<Value> {
    get_json(ns, kind, name)?.with_context(|| format!("{kind} {name} is gone"))
}

pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

pub fn condition_is(obj: &Value, type_: &str, status: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c["status"] == status)
}

pub fn step(obj: &Value) -> &str {
    obj["status"]["step"].as_str().unwrap_or("")
}

/// Waits for `status.step == want`; a Failed step ends the wait at once.
pub fn wait_step(ns: &str, kind: &str, name: &str, want: &str, timeout: Duration) -> anyhow::Result<Value> {
    wait_until(&format!("{kind} {name} at step {want}"), timeout, POLL, || {
        let o = get(ns, kind, name)?;
        if step(&o) == "Failed" && want != "Failed" {
            return Err(Hopeless(format!("{kind} {name} failed: {}", o["status"])).into());
        }
        Ok((step(&o) == want).then_some(o))
    })
}

/// Waits until `pred` holds of the resource.
pub fn wait_for(
    ns: &str,
    kind: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    wait_until(&format!("{kind} {name}: {what}"), timeout, POLL, || {
        let o = get(ns, kind, name)?;
        if step(&o) == "Failed" {
            return Err(Hopeless(format!("{kind} {name} failed: {}", o["status"])).into());
        }
        Ok(pred(&o).then_some(o))
    })
}

pub fn patch_merge(ns: &str, kind: &str, name: &str, merge: &str) -> anyhow::Result<String> {
    kubectl(&["patch", kind, name, "-n", ns, "--type", "merge", "-p", merge])
}

/// The Events of one object, as JSON text.
pub fn events_of(ns: &str, name: &str) -> anyhow::Result<String> {
    kubectl(&["get", "events", "-n", ns, "--field-selector", &format!("involvedObject.name={name}"), "-o", "json"])
}

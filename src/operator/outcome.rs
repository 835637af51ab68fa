//! Writing a reconcile's outcome: status by server-side apply, then the
//! transition's Event. Status goes first, because it is the durable record;
//! an Event lost to a crash between the two is only a missed notification.

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::core::object::HasStatus;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use super::context::Context;
use super::spec_check::Transition;
use crate::error::{Error, Result};
use crate::k8s::conditions::{self, Conditioned, Desired};
use crate::k8s::status::apply_status;

/// The resource's namespace; every Switchyard kind is namespaced.
pub fn namespace<K: Resource<DynamicType = ()>>(obj: &K) -> Result<String> {
    obj.namespace().ok_or_else(|| Error::NotNamespaced { kind: K::kind(&()).into(), name: obj.name_any() })
}

/// Applies `status` with `desired` conditions merged in, when anything changed,
/// and publishes `event`.
pub async fn record<K, S>(
    ctx: &Context,
    obj: &K,
    mut status: S,
    desired: &[Desired],
    event: Option<Transition>,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasStatus<Status = S>
        + Clone
        + DeserializeOwned
        + Debug,
    S: Conditioned,
{
    let current = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    status.set_conditions(conditions::merge(current.conditions(), desired, generation, &conditions::now()));
    status.set_observed_generation(generation);
    if status != current {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace(obj)?);
        apply_status(&api, &obj.name_any(), &status).await?;
    }
    if let Some(ev) = event {
        let regarding = obj.object_ref(&());
        ctx.events.publish(&regarding, ev.type_, &ev.reason, "Reconcile", ev.message).await;
    }
    Ok(())
}

/// A status with a `step`, as every kind but MySQLCluster has.
pub trait Stepped: Conditioned {
    fn step(&self) -> Option<&str>;
    fn set_step(&mut self, step: &str);
}

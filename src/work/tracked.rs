//! The resource a task works on, and its status as the task last wrote it.
//! While its task runs, the task is the status's only writer; these are its
//! writes: conditions, the step, Events on transitions.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::core::object::HasStatus;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::WorkError;
use super::gate::Hold;
use crate::k8s::conditions::{self, Conditioned, Desired, FALSE};
use crate::k8s::status::apply_status;
use crate::operator::context::Context;
use crate::operator::outcome::Stepped;

pub struct Tracked<K: HasStatus> {
    pub ctx: Arc<Context>,
    pub api: Api<K>,
    pub obj: K,
    pub status: K::Status,
    /// The Events' action: what the task does ("SchemaChange", "Migrate").
    action: &'static str,
    /// The status as last written. A task in a long steady state (in sync,
    /// postponed, dual-write) passes twice a second; writing the same status
    /// each time would only load the API server.
    written: Option<K::Status>,
}

/// What re-reading the resource found.
pub enum Live {
    /// It is there; the spec is current.
    Current,
    /// Deleted, being deleted, or replaced by another of the same name.
    Gone,
}

impl<K> Tracked<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + HasStatus + Clone + DeserializeOwned + Debug,
    K::Status: Stepped + Serialize + Clone + Default + PartialEq,
{
    /// None for an object without a namespace (every Switchyard kind has one).
    pub fn new(ctx: Arc<Context>, obj: K, action: &'static str) -> Option<Tracked<K>> {
        let ns = obj.namespace()?;
        Some(Tracked {
            api: Api::namespaced(ctx.client.clone(), &ns),
            status: obj.status().cloned().unwrap_or_default(),
            obj,
            ctx,
            action,
            written: None,
        })
    }

    pub fn name(&self) -> String {
        self.obj.name_any()
    }

    pub fn namespace(&self) -> String {
        self.obj.namespace().unwrap_or_default()
    }

    pub fn step(&self) -> Option<&str> {
        self.status.step()
    }

    /// Merges conditions into the status in memory.
    pub fn set(&mut self, desired: &[Desired]) {
        let generation = self.obj.meta().generation;
        let merged = conditions::merge(self.status.conditions(), desired, generation, &conditions::now());
        self.status.set_conditions(merged);
        self.status.set_observed_generation(generation);
    }

    /// Writes the status, unless it is what this task last wrote (the task
    /// is the status's only writer while it runs).
    pub async fn persist(&mut self) -> Result<(), WorkError> {
        self.status.set_observed_generation(self.obj.meta().generation);
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        apply_status(&self.api, &self.name(), &self.status).await?;
        self.written = Some(self.status.clone());
        Ok(())
    }

    pub async fn event(&self, type_: EventType, reason: &str, message: String) {
        let regarding = self.obj.object_ref(&());
        self.ctx.events.publish(&regarding, type_, reason, self.action, message).await;
    }

    /// Moves to `step`, writes the status, and announces a change of step.
    pub async fn enter(&mut self, step: &str, message: String) -> Result<(), WorkError> {
        let changed = self.step() != Some(step);
        self.status.set_step(step);
        self.persist().await?;
        if changed {
            self.event(EventType::Normal, step, message).await;
        }
        Ok(())
    }

    /// Shows a held gated action ([`super::gate`]): the `ReadyToComplete`
    /// condition, the step it rests in (`Postponed` or `resting`), and a
    /// Warning when the reason is new.
    pub async fn hold(&mut self, h: &Hold, resting: &str) -> Result<(), WorkError> {
        let news =
            conditions::find(self.status.conditions(), super::READY_TO_COMPLETE).is_none_or(|c| c.reason != h.reason);
        self.set(&[Desired::new(super::READY_TO_COMPLETE, h.status, h.reason, h.message.clone())]);
        self.enter(if h.postponed { "Postponed" } else { resting }, h.step_message.clone()).await?;
        if h.warn && news {
            self.event(EventType::Warning, h.reason, h.message.clone()).await;
        }
        Ok(())
    }

    /// The work's binary log positions belong to a primary that is no longer
    /// the cluster's ([`super::source`]): announces that its copy starts
    /// over, from `step`, on the new one.
    pub async fn start_over(&mut self, was: i64, now: i64, step: &str) -> Result<(), WorkError> {
        let message = format!("the primary changed (server_id {was} → {now}); the copy starts over on the new one");
        self.set(&[Desired::new(
            super::READY_TO_COMPLETE,
            FALSE,
            "PrimaryChanged",
            "copying again on the new primary",
        )]);
        self.event(EventType::Warning, "PrimaryChanged", message.clone()).await;
        self.enter(step, message).await
    }

    /// Reads the live spec: postpone, retry and cancel take effect on the
    /// next pass.
    pub async fn refresh(&mut self) -> Result<Live, WorkError> {
        match self.api.get_opt(&self.name()).await? {
            Some(o) if o.uid() == self.obj.uid() && o.meta().deletion_timestamp.is_none() => {
                self.obj = o;
                Ok(Live::Current)
            }
            _ => Ok(Live::Gone),
        }
    }
}

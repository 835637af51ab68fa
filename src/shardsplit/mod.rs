//! ShardSplit: split one table into shards through a dual-write phase.

pub mod api;
pub mod controller;
pub mod plan;
pub mod routing;
mod runner;
pub mod validate;

crate::impl_conditioned!(api::ShardSplitStatus);

impl crate::operator::outcome::Stepped for api::ShardSplitStatus {
    fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    fn set_step(&mut self, step: &str) {
        self.step = Some(step.to_string());
    }
}

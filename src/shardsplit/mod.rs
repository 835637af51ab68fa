//! ShardSplit: split one table into shards through a dual-write phase.

pub mod api;
pub mod controller;
pub mod validate;

crate::impl_conditioned!(api::ShardSplitStatus);

//! MySQLCluster: provisioning, replication, switchover and failover.

pub mod api;
pub mod controller;
pub mod validate;

crate::impl_conditioned!(api::MySQLClusterStatus);
pub mod clustering;

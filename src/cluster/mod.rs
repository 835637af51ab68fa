//! MySQLCluster: provisioning, replication, switchover and failover.

pub mod access;
pub mod api;
pub mod apply;
pub mod controller;
pub mod objects;
pub mod validate;

crate::impl_conditioned!(api::MySQLClusterStatus);
pub mod clustering;

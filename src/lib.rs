//! Switchyard: a Kubernetes operator that turns routine MySQL DBA work into
//! declarative custom resources.
//!
//! Each kind has its own home (API types, spec checks, controller):
//! [`cluster`], [`onlineddl`], [`migration`], [`shardsplit`]. Shared pieces sit
//! in one place each: [`mysql`] (server access), [`k8s`] (conditions, status,
//! events, owner references), [`operator`] (the process and its runtime), and
//! [`movement`], the one data-movement engine every row-moving kind uses.

// kube-derive takes one `printcolumn(...)`/`shortname` per column or name, which
// clippy misreads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod cluster;
pub mod crd;
pub mod error;
pub mod hash;
pub mod k8s;
pub mod migration;
pub mod movement;
pub mod mysql;
pub mod onlineddl;
pub mod operator;
pub mod shardsplit;
pub mod validation;
pub mod work;

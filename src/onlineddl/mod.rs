//! OnlineDDL: shadow-table schema change with a controllable cut-over.

pub mod api;
pub mod controller;
pub mod validate;

crate::impl_conditioned!(api::OnlineDDLStatus);

//! Migration: move databases between servers, ending in a guarded switch.

pub mod api;
pub mod controller;
pub mod validate;

crate::impl_conditioned!(api::MigrationStatus);

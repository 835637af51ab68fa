//! Migration: move databases between servers, ending in a guarded switch.

pub mod accounts;
pub mod api;
pub mod controller;
pub mod datasource;
pub mod plan;
pub mod replica;
pub mod runner;
pub mod scope;
pub mod validate;

crate::impl_conditioned!(api::MigrationStatus);

impl crate::operator::outcome::Stepped for api::MigrationStatus {
    fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    fn set_step(&mut self, step: &str) {
        self.step = Some(step.to_string());
    }
}

//! OnlineDDL: shadow-table schema change with a controllable cut-over.
//! The steps and the cut-over protocol are in `docs/online-ddl.md`.

pub mod api;
pub mod columns;
pub mod controller;
pub mod cutover;
pub mod plan;
pub mod runner;
pub mod sql;
pub mod table;
pub mod unique;
pub mod validate;

crate::impl_conditioned!(api::OnlineDDLStatus);

impl crate::operator::outcome::Stepped for api::OnlineDDLStatus {
    fn step(&self) -> Option<&str> {
        self.step.as_deref()
    }

    fn set_step(&mut self, step: &str) {
        self.step = Some(step.to_string());
    }
}

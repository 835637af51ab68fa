//! OnlineDDL: shadow-table schema change with a controllable cut-over.

pub mod api;
pub mod controller;
pub mod validate;

crate::impl_conditioned!(api::OnlineDDLStatus);

impl crate::operator::outcome::Stepped for api::OnlineDDLStatus {
    fn set_step(&mut self, step: &str) {
        self.step = Some(step.to_string());
    }
}

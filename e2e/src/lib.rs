pub mod agent;
pub mod harness;

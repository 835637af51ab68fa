//! Kubernetes helpers shared by every controller: conditions, status apply,
//! events and owner references.

pub mod conditions;
pub mod events;
pub mod finalizer;
pub mod owner;
pub mod schema;
pub mod status;

/// The field manager of every server-side apply Switchyard makes. Stable, so
/// ownership of fields survives operator upgrades and restarts.
pub const FIELD_MANAGER: &str = "switchyard";

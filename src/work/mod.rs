//! The lifecycle of long work, written once for every kind that moves data
//! (OnlineDDL, Migration, ShardSplit): the task loop and its status writes,
//! the gate in front of a bounded, postponable action, the guarded switch,
//! and the check that the work still runs on the server its positions
//! belong to. Kinds supply their steps; the engine ([`crate::movement`])
//! moves the rows and knows nothing of this layer.

pub mod attempts;
pub mod error;
pub mod failpoint;
pub mod gate;
pub mod guard;
pub mod source;
pub mod switched;
pub mod task;
pub mod tracked;

/// The two conditions of every data-moving kind: whether the gated action
/// (cut-over, switch) may run, and how the work ended.
pub const READY_TO_COMPLETE: &str = "ReadyToComplete";
pub const SUCCEEDED: &str = "Succeeded";

//! Schema helpers for fields whose shape the API server need not know.

use schemars::Schema;

/// An object kept as it is (`x-kubernetes-preserve-unknown-fields`): for
/// state only the operator reads, such as an engine checkpoint.
pub fn free_form_object(_: &mut schemars::SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A string that is one of `values`: a step, whose schema then lists every
/// value for `kubectl explain` and clients.
pub fn one_of(values: &[&str]) -> Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": values,
    })
}

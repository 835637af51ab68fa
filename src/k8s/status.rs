//! Status writes by server-side apply. The whole status a controller owns is
//! applied at once under [`FIELD_MANAGER`], so a restarted operator simply
//! re-applies what it computes and nothing depends on what it remembered.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use super::FIELD_MANAGER;

/// The body of a status apply: apiVersion and kind are required by SSA.
pub fn status_patch<K, S>(status: &S) -> serde_json::Value
where
    K: Resource<DynamicType = ()>,
    S: Serialize,
{
    serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    })
}

/// Applies `status` to the status subresource of `name`.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = status_patch::<K, S>(status);
    // force: the operator is the only intended writer of these fields; a
    // conflicting manager (a user's stray `kubectl edit`) must not wedge it.
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await
}

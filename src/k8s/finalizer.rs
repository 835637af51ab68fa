//! Adding and removing one finalizer. Switchyard holds a finalizer only
//! while a resource has state outside Kubernetes to clean up (an OnlineDDL's
//! shadow table, a Migration's write fence on the source).

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Sets whether `finalizer` is on the object, reading it fresh each try:
/// the patch carries the resourceVersion it read, so a concurrent change of
/// the list makes it fail and read again instead of clobbering.
pub async fn ensure<K>(api: &Api<K>, name: &str, finalizer: &str, present: bool) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    ensure_if(api, name, finalizer, |_| present).await
}

/// Like [`ensure`], with the decision made on the object as read: a caller
/// working from an older copy cannot remove a finalizer that became needed
/// in between.
pub async fn ensure_if<K>(
    api: &Api<K>,
    name: &str,
    finalizer: &str,
    wanted: impl Fn(&K) -> bool,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(obj) = api.get_opt(name).await? else { return Ok(()) };
        let present = wanted(&obj);
        let has = obj.finalizers().iter().any(|f| f == finalizer);
        if has == present {
            return Ok(());
        }
        let mut finalizers: Vec<String> = obj.finalizers().iter().filter(|f| *f != finalizer).cloned().collect();
        if present {
            finalizers.push(finalizer.to_string());
        }
        let patch = serde_json::json!({
            "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() }
        });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && tries < 5 => continue,
            Err(e) => return Err(e),
        }
    }
}

//! Storage for claims. There is no CSI driver: for every Pending claim the
//! agent creates a hostPath PersistentVolume under `<state>/volumes/<ns>/<claim>`,
//! pre-bound to the claim through claimRef, and lets kube-controller-manager's
//! PV binder do the binding, so claims go through the real Bound lifecycle.
//! When the claim is deleted the volume is Released; the agent then deletes the
//! volume and its data, like a dynamic provisioner with reclaimPolicy Delete.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::layout::StateLayout;

pub const PROVISIONED_BY: &str = "switchyard.io/provisioned-by";
const PROVISIONER: &str = "switchyard-node-agent";

pub fn wants_volume(claim: &PersistentVolumeClaim) -> bool {
    let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Pending");
    let unnamed = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or_default().is_empty();
    pending && unnamed && claim.metadata.deletion_timestamp.is_none()
}

pub fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default())
}

/// A hostPath volume that only this claim can bind.
pub fn volume_for(claim: &PersistentVolumeClaim, host_path: &Path) -> PersistentVolume {
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .unwrap_or_else(|| Quantity("1Gi".into()));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name(claim)),
            labels: Some([(PROVISIONED_BY.to_string(), PROVISIONER.to_string())].into()),
            annotations: Some([("pv.kubernetes.io/provisioned-by".to_string(), PROVISIONER.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
            access_modes: Some(
                spec.access_modes.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            ),
            // Same class as the claim (or none): the binder requires it.
            storage_class_name: Some(spec.storage_class_name.clone().unwrap_or_default()),
            volume_mode: spec.volume_mode.clone(),
            // The agent deletes released volumes itself; the controller's own
            // hostPath deleter only works under /tmp.
            persistent_volume_reclaim_policy: Some("Retain".into()),
            host_path: Some(HostPathVolumeSource {
                path: host_path.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: claim.metadata.namespace.clone(),
                name: claim.metadata.name.clone(),
                uid: claim.metadata.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn is_released(pv: &PersistentVolume) -> bool {
    matches!(pv.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Released") | Some("Failed"))
}

pub async fn reconcile(client: &Client, layout: &StateLayout) -> Result<(), kube::Error> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let ours = volumes.list(&ListParams::default().labels(&format!("{PROVISIONED_BY}={PROVISIONER}"))).await?.items;
    // Released volumes first: a claim recreated with the same name must not
    // find the old data, nor have it deleted under its feet later.
    for pv in ours.iter().filter(|pv| is_released(pv)) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        if let Some(path) = pv.spec.as_ref().and_then(|s| s.host_path.as_ref()).map(|h| h.path.clone()) {
            let shared = ours.iter().any(|other| {
                other.metadata.name != pv.metadata.name
                    && !is_released(other)
                    && other.spec.as_ref().and_then(|s| s.host_path.as_ref()).map(|h| &h.path) == Some(&path)
            });
            if !shared && Path::new(&path).starts_with(layout.volumes_root()) {
                tracing::info!(volume = %name, %path, "claim deleted; removing its data");
                if let Err(e) = std::fs::remove_dir_all(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(%path, error = %e, "removing volume data failed");
                    continue;
                }
                // The namespace's directory goes with its last claim.
                if let Some(parent) = Path::new(&path).parent() {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
        match volumes.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(volume = %name, error = %e, "deleting released volume failed"),
        }
    }

    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    for claim in claims.list(&ListParams::default()).await?.items.iter().filter(|c| wants_volume(c)) {
        let name = volume_name(claim);
        if ours.iter().any(|pv| pv.metadata.name.as_deref() == Some(name.as_str())) {
            continue;
        }
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let dir = layout.claim_dir(&namespace, &claim_name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "creating volume directory failed");
            continue;
        }
        match volumes.create(&PostParams::default(), &volume_for(claim, &dir)).await {
            Ok(_) => {
                tracing::info!(claim = %format!("{namespace}/{claim_name}"), volume = %name, "provisioned hostPath volume")
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                tracing::warn!(claim = %format!("{namespace}/{claim_name}"), error = %e, "creating volume failed")
            }
        }
    }
    Ok(())
}

pub async fn run(client: Client, layout: StateLayout) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let stream = watcher(claims, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)) => {}
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "claim watch interrupted");
                    continue;
                }
                None => return,
            },
            _ = sweep.tick() => {}
        }
        if let Err(e) = reconcile(&client, &layout).await {
            tracing::warn!(error = %e, "volume provisioning pass failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
    };

    fn claim(class: Option<&str>, phase: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data-db-0".into()),
                namespace: Some("ns".into()),
                uid: Some("1234".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: class.map(str::to_string),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity("2Gi".into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: phase.map(|p| PersistentVolumeClaimStatus { phase: Some(p.into()), ..Default::default() }),
        }
    }

    #[test]
    fn pending_unnamed_claims_get_a_volume() {
        assert!(wants_volume(&claim(None, Some("Pending"))));
        assert!(wants_volume(&claim(None, None)));
        assert!(!wants_volume(&claim(None, Some("Bound"))));
        let mut named = claim(None, Some("Pending"));
        named.spec.as_mut().unwrap().volume_name = Some("pv-x".into());
        assert!(!wants_volume(&named));
    }

    #[test]
    fn volume_is_prebound_with_same_class_and_size() {
        let pv = volume_for(&claim(Some("standard"), None), Path::new("/st/volumes/ns/data-db-0"));
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-1234"));
        let spec = pv.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
        assert_eq!(spec.capacity.unwrap()["storage"].0, "2Gi");
        assert_eq!(spec.host_path.unwrap().path, "/st/volumes/ns/data-db-0");
        let r = spec.claim_ref.unwrap();
        assert_eq!(
            (r.namespace.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("ns"), Some("data-db-0"), Some("1234"))
        );
        let classless = volume_for(&claim(None, None), Path::new("/x")).spec.unwrap();
        assert_eq!(classless.storage_class_name.as_deref(), Some(""));
    }
}

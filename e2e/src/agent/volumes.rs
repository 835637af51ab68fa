//! Pod volumes on the host. Claims resolve to their PersistentVolume's host
//! directory; ConfigMaps, Secrets and the downward API are written out as files
//! under the pod run dir (as a kubelet's atomic writer would); emptyDir is a
//! directory that lives as long as the pod.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::{Api, Client};

use super::env::{self, Objects, PodFacts, References};
use super::layout::PodPaths;
use super::mounts::MountTable;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("persistentvolumeclaim \"{0}\" not found")]
    ClaimNotFound(String),
    #[error("persistentvolumeclaim \"{0}\" is not bound yet")]
    ClaimNotBound(String),
    #[error("volume \"{volume}\": {message}")]
    Unsupported { volume: String, message: String },
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {name}")]
    KeyNotFound { kind: &'static str, name: String, key: String },
    #[error("volume \"{volume}\": invalid path {path:?}")]
    BadPath { volume: String, path: String },
    #[error("volume mount \"{0}\" refers to no volume of the pod")]
    NoSuchVolume(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Field(#[from] env::EnvError),
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let context = context.into();
    move |source| VolumeError::Io { context, source }
}

/// Fetch the ConfigMaps and Secrets the pod refers to; missing ones are left
/// out (whether that is fatal depends on `optional` where they are used).
pub async fn fetch_objects(client: &Client, namespace: &str, refs: &References) -> Result<Objects, kube::Error> {
    let mut objects = Objects::default();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in &refs.configmaps {
        if let Some(cm) = configmaps.get_opt(name).await? {
            objects.add_configmap(&cm);
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in &refs.secrets {
        if let Some(s) = secrets.get_opt(name).await? {
            objects.add_secret(&s);
        }
    }
    Ok(objects)
}

/// Host directories of the pod's claims, once they are bound.
pub async fn resolve_claims(client: &Client, pod: &Pod) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(source) = &v.persistent_volume_claim else { continue };
        let name = source.claim_name.clone();
        let claim = claims.get_opt(&name).await?.ok_or_else(|| VolumeError::ClaimNotFound(name.clone()))?;
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let pv_name = claim.spec.as_ref().and_then(|s| s.volume_name.clone());
        let (true, Some(pv_name)) = (bound, pv_name) else {
            return Err(VolumeError::ClaimNotBound(name));
        };
        let pv = volumes.get_opt(&pv_name).await?.ok_or_else(|| VolumeError::ClaimNotBound(name.clone()))?;
        let spec = pv.spec.unwrap_or_default();
        let path =
            spec.host_path.map(|h| h.path).or(spec.local.map(|l| l.path)).ok_or_else(|| VolumeError::Unsupported {
                volume: v.name.clone(),
                message: format!("persistentvolume {pv_name} is neither hostPath nor local"),
            })?;
        std::fs::create_dir_all(&path).map_err(io(format!("creating {path}")))?;
        out.insert(name, PathBuf::from(path));
    }
    Ok(out)
}

/// A relative path inside a volume; `..` and absolute paths would escape it.
fn safe_relative(volume: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(VolumeError::BadPath { volume: volume.to_string(), path: path.to_string() })
    }
}

/// A file to write into a volume directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// The files of a ConfigMap/Secret source: all keys, or just `items`.
#[allow(clippy::too_many_arguments)]
pub fn key_files(
    volume: &str,
    kind: &'static str,
    name: &str,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<VolumeFile>, VolumeError> {
    let mode = default_mode.unwrap_or(0o644) as u32;
    let Some(data) = data else {
        return if optional {
            Ok(Vec::new())
        } else if kind == "secret" {
            Err(VolumeError::SecretNotFound(name.to_string()))
        } else {
            Err(VolumeError::ConfigMapNotFound(name.to_string()))
        };
    };
    match items {
        None => data
            .iter()
            .map(|(k, v)| Ok(VolumeFile { path: safe_relative(volume, k)?, content: v.clone(), mode }))
            .collect(),
        Some(items) => {
            let mut files = Vec::new();
            for item in items {
                match data.get(&item.key) {
                    Some(v) => files.push(VolumeFile {
                        path: safe_relative(volume, &item.path)?,
                        content: v.clone(),
                        mode: item.mode.map(|m| m as u32).unwrap_or(mode),
                    }),
                    None if optional => {}
                    None => {
                        return Err(VolumeError::KeyNotFound { kind, name: name.to_string(), key: item.key.clone() });
                    }
                }
            }
            Ok(files)
        }
    }
}

/// Replace a volume directory's content with `files`.
fn write_files(dir: &Path, files: &[VolumeFile]) -> Result<(), VolumeError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(format!("clearing {}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, &f.content).map_err(io(format!("writing {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(io(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

/// Write out the pod's volumes; returns volume name → host path.
pub fn materialize(
    pod: &Pod,
    paths: &PodPaths,
    objects: &Objects,
    facts: &PodFacts,
    claims: &BTreeMap<String, PathBuf>,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = paths.volume(&v.name);
        let downward = |items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
                        mode: Option<i32>|
         -> Result<Vec<VolumeFile>, VolumeError> {
            items
                .iter()
                .map(|item| {
                    let content = match &item.field_ref {
                        Some(f) => env::field_value(facts, &f.field_path)?,
                        None => String::new(),
                    };
                    Ok(VolumeFile {
                        path: safe_relative(&v.name, &item.path)?,
                        content: content.into_bytes(),
                        mode: item.mode.or(mode).unwrap_or(0o644) as u32,
                    })
                })
                .collect()
        };
        let host = if let Some(cm) = &v.config_map {
            let files = key_files(
                &v.name,
                "configmap",
                &cm.name,
                objects.configmaps.get(&cm.name),
                cm.items.as_ref(),
                cm.default_mode,
                cm.optional == Some(true),
            )?;
            write_files(&dir, &files)?;
            dir
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let files = key_files(
                &v.name,
                "secret",
                &name,
                objects.secrets.get(&name),
                s.items.as_ref(),
                s.default_mode,
                s.optional == Some(true),
            )?;
            write_files(&dir, &files)?;
            dir
        } else if let Some(d) = &v.downward_api {
            let files = downward(d.items.as_deref().unwrap_or_default(), d.default_mode)?;
            write_files(&dir, &files)?;
            dir
        } else if let Some(p) = &v.projected {
            let mut files = Vec::new();
            for source in p.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    files.extend(key_files(
                        &v.name,
                        "configmap",
                        &cm.name,
                        objects.configmaps.get(&cm.name),
                        cm.items.as_ref(),
                        p.default_mode,
                        cm.optional == Some(true),
                    )?);
                }
                if let Some(s) = &source.secret {
                    files.extend(key_files(
                        &v.name,
                        "secret",
                        &s.name,
                        objects.secrets.get(&s.name),
                        s.items.as_ref(),
                        p.default_mode,
                        s.optional == Some(true),
                    )?);
                }
                if let Some(d) = &source.downward_api {
                    files.extend(downward(d.items.as_deref().unwrap_or_default(), p.default_mode)?);
                }
                // serviceAccountToken: mariadbd never talks to the API, and a
                // token minted here would outlive its pod; left out on purpose.
            }
            write_files(&dir, &files)?;
            dir
        } else if v.empty_dir.is_some() {
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            dir
        } else if let Some(claim) = &v.persistent_volume_claim {
            claims
                .get(&claim.claim_name)
                .cloned()
                .ok_or_else(|| VolumeError::ClaimNotBound(claim.claim_name.clone()))?
        } else if let Some(h) = &v.host_path {
            if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
                std::fs::create_dir_all(&h.path).map_err(io(format!("creating {}", h.path)))?;
            }
            PathBuf::from(&h.path)
        } else {
            return Err(VolumeError::Unsupported {
                volume: v.name.clone(),
                message: "only persistentVolumeClaim, emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported on this node".into(),
            });
        };
        out.insert(v.name.clone(), host);
    }
    Ok(out)
}

/// The container's mounts as a translation table (subPath included).
pub fn mount_table(container: &Container, volumes: &BTreeMap<String, PathBuf>) -> Result<MountTable, VolumeError> {
    let mut table = MountTable::new();
    for m in container.volume_mounts.iter().flatten() {
        let host = volumes.get(&m.name).ok_or_else(|| VolumeError::NoSuchVolume(m.name.clone()))?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let path = host.join(safe_relative(&m.name, sub)?);
                // A kubelet creates a missing subPath as a directory.
                if !path.exists() {
                    std::fs::create_dir_all(&path).map_err(io(format!("creating {}", path.display())))?;
                }
                path
            }
            None => host.clone(),
        };
        table.add(&m.mount_path, host);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, EmptyDirVolumeSource, PodSpec, Volume, VolumeMount};

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn key_files_all_keys_or_items() {
        let d = data(&[("my.cnf", "[mysqld]"), ("other", "x")]);
        let all = key_files("cfg", "configmap", "c", Some(&d), None, None, false).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].mode, 0o644);
        let items = vec![KeyToPath { key: "my.cnf".into(), path: "conf/extra.cnf".into(), mode: Some(0o600) }];
        let some = key_files("cfg", "configmap", "c", Some(&d), Some(&items), Some(0o400), false).unwrap();
        assert_eq!(
            some,
            vec![VolumeFile { path: "conf/extra.cnf".into(), content: b"[mysqld]".to_vec(), mode: 0o600 }]
        );
        let missing = vec![KeyToPath { key: "nope".into(), path: "x".into(), mode: None }];
        assert!(matches!(
            key_files("cfg", "secret", "s", Some(&d), Some(&missing), None, false),
            Err(VolumeError::KeyNotFound { .. })
        ));
        assert!(key_files("cfg", "secret", "s", Some(&d), Some(&missing), None, true).unwrap().is_empty());
        assert!(matches!(
            key_files("cfg", "secret", "s", None, None, None, false),
            Err(VolumeError::SecretNotFound(_))
        ));
        let evil = vec![KeyToPath { key: "my.cnf".into(), path: "../../etc/passwd".into(), mode: None }];
        assert!(matches!(
            key_files("cfg", "configmap", "c", Some(&d), Some(&evil), None, false),
            Err(VolumeError::BadPath { .. })
        ));
    }

    #[test]
    fn materializes_configmaps_and_builds_the_mount_table() {
        let root = std::env::temp_dir().join(format!("switchyard-vol-{}", std::process::id()));
        let paths = PodPaths { dir: root.join("pod") };
        let pod = Pod {
            spec: Some(PodSpec {
                volumes: Some(vec![
                    Volume {
                        name: "config".into(),
                        config_map: Some(ConfigMapVolumeSource { name: "cfg".into(), ..Default::default() }),
                        ..Default::default()
                    },
                    Volume {
                        name: "scratch".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut objects = Objects::default();
        objects.configmaps.insert("cfg".into(), data(&[("extra.cnf", "[mysqld]\nmax_connections=77\n")]));
        let volumes = materialize(&pod, &paths, &objects, &PodFacts::default(), &BTreeMap::new()).unwrap();
        let cnf = std::fs::read_to_string(paths.volume("config").join("extra.cnf")).unwrap();
        assert!(cnf.contains("max_connections=77"));
        assert!(paths.volume("scratch").is_dir());

        let container = Container {
            name: "db".into(),
            volume_mounts: Some(vec![
                VolumeMount { name: "config".into(), mount_path: "/etc/mysql/conf.d".into(), ..Default::default() },
                VolumeMount {
                    name: "scratch".into(),
                    mount_path: "/var/lib/mysql".into(),
                    sub_path: Some("data".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let table = mount_table(&container, &volumes).unwrap();
        assert_eq!(table.host_path("/etc/mysql/conf.d/extra.cnf"), Some(paths.volume("config").join("extra.cnf")));
        assert_eq!(table.mounted_at("/var/lib/mysql"), Some(paths.volume("scratch").join("data").as_path()));
        assert!(paths.volume("scratch").join("data").is_dir());
        let _ = std::fs::remove_dir_all(&root);
    }
}

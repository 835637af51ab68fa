//! Container environment, resolved the way a kubelet does: envFrom first, then
//! env in order, `$(VAR)` references expanded against what came before, and
//! values pulled from ConfigMaps, Secrets and the pod itself (downward API).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound { kind: &'static str, namespace: String, name: String, key: String },
    #[error("unsupported fieldPath {0}")]
    UnsupportedField(String),
    #[error("field {0} is not known yet")]
    NotYetKnown(String),
}

/// Facts about the pod that the downward API can expose.
#[derive(Debug, Clone)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub node_name: String,
    pub service_account: String,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
}

impl Default for PodFacts {
    fn default() -> Self {
        Self {
            name: String::new(),
            namespace: String::new(),
            uid: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            node_name: String::new(),
            service_account: String::new(),
            pod_ip: None,
            host_ip: Ipv4Addr::LOCALHOST,
        }
    }
}

impl PodFacts {
    pub fn from_pod(pod: &Pod, pod_ip: Option<Ipv4Addr>, host_ip: Ipv4Addr) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            service_account: spec.and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".to_string()),
            pod_ip,
            host_ip,
        }
    }
}

/// ConfigMaps and Secrets the pod refers to, flattened to key → bytes. A name
/// that is absent from the map did not exist when it was fetched.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub configmaps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl Objects {
    pub fn add_configmap(&mut self, cm: &ConfigMap) {
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in cm.data.clone().unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        for (k, v) in cm.binary_data.clone().unwrap_or_default() {
            data.insert(k, v.0);
        }
        self.configmaps.insert(cm.metadata.name.clone().unwrap_or_default(), data);
    }

    pub fn add_secret(&mut self, secret: &Secret) {
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in secret.data.clone().unwrap_or_default() {
            data.insert(k, v.0);
        }
        for (k, v) in secret.string_data.clone().unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        self.secrets.insert(secret.metadata.name.clone().unwrap_or_default(), data);
    }
}

/// Names of the ConfigMaps and Secrets a pod uses, from env and volumes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    pub configmaps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

pub fn references(pod: &Pod) -> References {
    let mut refs = References::default();
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    for c in containers {
        for from in c.env_from.iter().flatten() {
            if let Some(cm) = &from.config_map_ref {
                refs.configmaps.insert(cm.name.clone());
            }
            if let Some(s) = &from.secret_ref {
                refs.secrets.insert(s.name.clone());
            }
        }
        for var in c.env.iter().flatten() {
            let Some(from) = &var.value_from else { continue };
            if let Some(cm) = &from.config_map_key_ref {
                refs.configmaps.insert(cm.name.clone());
            }
            if let Some(s) = &from.secret_key_ref {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            refs.configmaps.insert(cm.name.clone());
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(name);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                refs.configmaps.insert(cm.name.clone());
            }
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
}

/// The value of a downward-API field path.
pub fn field_value(facts: &PodFacts, path: &str) -> Result<String, EnvError> {
    let subscript =
        |prefix: &str| -> Option<String> { path.strip_prefix(prefix)?.strip_suffix("']").map(str::to_string) };
    if let Some(key) = subscript("metadata.labels['") {
        return Ok(facts.labels.get(&key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations['") {
        return Ok(facts.annotations.get(&key).cloned().unwrap_or_default());
    }
    let map_text =
        |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect::<Vec<_>>().join("\n");
    Ok(match path {
        "metadata.name" => facts.name.clone(),
        "metadata.namespace" => facts.namespace.clone(),
        "metadata.uid" => facts.uid.clone(),
        "metadata.labels" => map_text(&facts.labels),
        "metadata.annotations" => map_text(&facts.annotations),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => facts.service_account.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => {
            facts.pod_ip.map(|ip| ip.to_string()).ok_or_else(|| EnvError::NotYetKnown(path.to_string()))?
        }
        other => return Err(EnvError::UnsupportedField(other.to_string())),
    })
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, undefined ones
/// are kept verbatim, and `$$` escapes a dollar.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str(&rest[pos..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The container's environment, in definition order (later entries win).
pub fn resolve(container: &Container, facts: &PodFacts, objects: &Objects) -> Result<Vec<(String, String)>, EnvError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, name: String, value: String| {
        vars.retain(|(n, _)| *n != name);
        vars.push((name, value));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            match objects.configmaps.get(&cm.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), text(v));
                    }
                }
                None if cm.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(cm.name.clone())),
            }
        }
        if let Some(s) = &from.secret_ref {
            match objects.secrets.get(&s.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), text(v));
                    }
                }
                None if s.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(s.name.clone())),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(sel) = &from.secret_key_ref {
                let optional = sel.optional == Some(true);
                match objects.secrets.get(&sel.name) {
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound(sel.name.clone())),
                    Some(data) => match data.get(&sel.key) {
                        Some(v) => text(v),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::KeyNotFound {
                                kind: "secret",
                                namespace: facts.namespace.clone(),
                                name: sel.name.clone(),
                                key: sel.key.clone(),
                            });
                        }
                    },
                }
            } else if let Some(sel) = &from.config_map_key_ref {
                let optional = sel.optional == Some(true);
                match objects.configmaps.get(&sel.name) {
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(sel.name.clone())),
                    Some(data) => match data.get(&sel.key) {
                        Some(v) => text(v),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::KeyNotFound {
                                kind: "configmap",
                                namespace: facts.namespace.clone(),
                                name: sel.name.clone(),
                                key: sel.key.clone(),
                            });
                        }
                    },
                }
            } else if let Some(field) = &from.field_ref {
                field_value(facts, &field.field_path)?
            } else if let Some(res) = &from.resource_field_ref {
                resource_value(container, &res.resource)
            } else {
                String::new()
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            let known = vars.clone();
            expand(&raw, &|name| known.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()))
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}

/// resourceFieldRef without a divisor: the container's own quantity, or the
/// node's (unlimited) value as a kubelet reports it: 0 means "no limit here".
fn resource_value(container: &Container, resource: &str) -> String {
    let res = container.resources.as_ref();
    let (map, key) = match resource.split_once('.') {
        Some(("limits", k)) => (res.and_then(|r| r.limits.as_ref()), k),
        Some(("requests", k)) => (res.and_then(|r| r.requests.as_ref()), k),
        _ => (None, resource),
    };
    map.and_then(|m| m.get(key)).map(|q| q.0.clone()).unwrap_or_else(|| "0".to_string())
}

/// Expand `$(VAR)` in command and args with the resolved environment.
pub fn expand_all(words: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    words.iter().map(|w| expand(w, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector,
        SecretKeySelector,
    };

    fn facts() -> PodFacts {
        PodFacts {
            name: "db-0".into(),
            namespace: "ns".into(),
            uid: "u-1".into(),
            pod_ip: Some(Ipv4Addr::new(127, 0, 0, 10)),
            host_ip: Ipv4Addr::LOCALHOST,
            labels: [("app".to_string(), "db".to_string())].into(),
            ..Default::default()
        }
    }

    fn objects() -> Objects {
        let mut o = Objects::default();
        let mut s = Secret::default();
        s.metadata.name = Some("creds".into());
        s.data = Some([("root".to_string(), ByteString(b"s3cret".to_vec()))].into());
        o.add_secret(&s);
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("settings".into());
        cm.data = Some(
            [("MARIADB_DATABASE".to_string(), "app".to_string()), ("mode".to_string(), "fast".to_string())].into(),
        );
        o.add_configmap(&cm);
        o
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
    }

    fn var_from(name: &str, from: EnvVarSource) -> EnvVar {
        EnvVar { name: name.into(), value_from: Some(from), ..Default::default() }
    }

    #[test]
    fn resolves_values_refs_and_fields_in_order() {
        let container = Container {
            name: "mariadb".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
                prefix: None,
                secret_ref: None,
            }]),
            env: Some(vec![
                var_from(
                    "MARIADB_ROOT_PASSWORD",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "root".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                var_from(
                    "MODE",
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".into(),
                            key: "mode".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                var_from(
                    "POD_IP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".into(), api_version: None }),
                        ..Default::default()
                    },
                ),
                var_from(
                    "POD_NAME",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), api_version: None }),
                        ..Default::default()
                    },
                ),
                var("GREETING", "$(POD_NAME) on $(POD_IP) $(UNDEFINED) $$(POD_NAME)"),
                var("MARIADB_DATABASE", "override"),
            ]),
            ..Default::default()
        };
        let env = resolve(&container, &facts(), &objects()).unwrap();
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("MARIADB_ROOT_PASSWORD"), Some("s3cret"));
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("POD_IP"), Some("127.0.0.10"));
        assert_eq!(get("GREETING"), Some("db-0 on 127.0.0.10 $(UNDEFINED) $(POD_NAME)"));
        assert_eq!(get("MARIADB_DATABASE"), Some("override"));
        assert_eq!(env.iter().filter(|(k, _)| k == "MARIADB_DATABASE").count(), 1);
    }

    #[test]
    fn missing_secret_key_is_a_config_error_unless_optional() {
        let mut c = Container {
            name: "mariadb".into(),
            env: Some(vec![var_from(
                "X",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "nope".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let err = resolve(&c, &facts(), &objects()).unwrap_err();
        assert_eq!(err.to_string(), "couldn't find key nope in secret ns/creds");
        c.env.as_mut().unwrap()[0].value_from.as_mut().unwrap().secret_key_ref.as_mut().unwrap().optional = Some(true);
        assert!(resolve(&c, &facts(), &objects()).unwrap().is_empty());

        let missing = Container {
            name: "m".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "absent".into(), optional: None }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(resolve(&missing, &facts(), &objects()).unwrap_err(), EnvError::ConfigMapNotFound("absent".into()));
    }

    #[test]
    fn field_paths() {
        let f = facts();
        assert_eq!(field_value(&f, "metadata.namespace").unwrap(), "ns");
        assert_eq!(field_value(&f, "metadata.labels['app']").unwrap(), "db");
        assert_eq!(field_value(&f, "status.hostIP").unwrap(), "127.0.0.1");
        assert!(field_value(&f, "spec.bogus").is_err());
        let no_ip = PodFacts { pod_ip: None, ..facts() };
        assert!(field_value(&no_ip, "status.podIP").is_err());
    }

    #[test]
    fn expansion_edge_cases() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)$(A)", &lookup), "xx");
        assert_eq!(expand("$A $(A", &lookup), "$A $(A");
        assert_eq!(expand("cost: $$5", &lookup), "cost: $5");
        let args = expand_all(&["--server-id=$(ID)".to_string()], &[("ID".to_string(), "7".to_string())]);
        assert_eq!(args, vec!["--server-id=7".to_string()]);
    }
}

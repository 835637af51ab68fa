//! The data source: what applications read to find the database. A Service
//! and a ConfigMap, both pointing at the source until the switch and at the
//! target's primary after it.
//!
//! - A MySQLCluster is reached through a Service that selects its primary
//!   pod, so the data source follows the cluster's failovers by itself.
//! - An external server named by IP is a selector-less Service with an
//!   Endpoints object (the control plane mirrors it into EndpointSlices;
//!   Endpoints is the one form every Kubernetes from 1.20 to today serves).
//! - An external server named by host name is an ExternalName Service.
//!
//! The objects carry no owner reference: applications depend on them after
//! the Migration is deleted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ConfigMap, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};

use crate::cluster::objects::{self, MYSQL_PORT, PORT_NAME, ROLE_PRIMARY};
use crate::k8s::FIELD_MANAGER;
use crate::work::error::WorkError;

pub const MIGRATION_LABEL: &str = "switchyard.io/migration";

/// Where the data source points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Cluster(String),
    ExternalIp { ip: String, port: i32 },
    ExternalHost { host: String, port: i32 },
}

impl Place {
    pub fn external(host: &str, port: i32) -> Place {
        if host.parse::<IpAddr>().is_ok() {
            Place::ExternalIp { ip: host.to_string(), port }
        } else {
            Place::ExternalHost { host: host.to_string(), port }
        }
    }

    /// Host and port as applications should dial them.
    pub fn address(&self, namespace: &str) -> (String, i32) {
        match self {
            Place::Cluster(c) => (format!("{}.{namespace}.svc", objects::primary_service_name(c)), MYSQL_PORT),
            Place::ExternalIp { ip, port } => (ip.clone(), *port),
            Place::ExternalHost { host, port } => (host.clone(), *port),
        }
    }

    pub fn endpoint(&self, namespace: &str) -> String {
        let (h, p) = self.address(namespace);
        format!("{h}:{p}")
    }
}

fn meta(namespace: &str, name: &str, migration: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([
            (objects::MANAGED_BY_LABEL.to_string(), objects::OPERATOR_NAME.to_string()),
            (MIGRATION_LABEL.to_string(), migration.to_string()),
        ])),
        ..ObjectMeta::default()
    }
}

pub fn service(namespace: &str, name: &str, migration: &str, place: &Place) -> Service {
    let port = |target: IntOrString| ServicePort {
        name: Some(PORT_NAME.to_string()),
        port: MYSQL_PORT,
        target_port: Some(target),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    };
    let spec = match place {
        Place::Cluster(c) => ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(objects::role_selector(c, ROLE_PRIMARY)),
            ports: Some(vec![port(IntOrString::String(PORT_NAME.to_string()))]),
            ..ServiceSpec::default()
        },
        Place::ExternalIp { port: p, .. } => ServiceSpec {
            type_: Some("ClusterIP".into()),
            ports: Some(vec![port(IntOrString::Int(*p))]),
            ..ServiceSpec::default()
        },
        Place::ExternalHost { host, .. } => ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(host.clone()),
            ..ServiceSpec::default()
        },
    };
    Service { metadata: meta(namespace, name, migration), spec: Some(spec), ..Service::default() }
}

/// Whether Kubernetes accepts `ip` as an endpoint. Loopback and link-local
/// addresses are refused by the API (and no pod could reach them anyway);
/// for those only the ConfigMap names the source.
pub fn routable(ip: &str) -> bool {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => !(a.is_loopback() || a.is_link_local() || a.is_unspecified() || a.is_multicast()),
        Ok(IpAddr::V6(a)) => {
            !(a.is_loopback() || a.is_unspecified() || a.is_multicast() || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
        Err(_) => false,
    }
}

/// The Endpoints of a selector-less Service in front of an external IP.
pub fn endpoints(namespace: &str, name: &str, migration: &str, place: &Place) -> Option<Endpoints> {
    let Place::ExternalIp { ip, port } = place else { return None };
    if !routable(ip) {
        return None;
    }
    Some(Endpoints {
        metadata: meta(namespace, name, migration),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress { ip: ip.clone(), ..EndpointAddress::default() }]),
            ports: Some(vec![EndpointPort {
                name: Some(PORT_NAME.to_string()),
                port: *port,
                protocol: Some("TCP".into()),
                ..EndpointPort::default()
            }]),
            ..EndpointSubset::default()
        }]),
    })
}

/// `generation` grows by one at every switch, so clients that cache the
/// connection details can tell they changed.
pub fn config_map(
    namespace: &str,
    name: &str,
    migration: &str,
    place: &Place,
    databases: &[String],
    generation: i64,
) -> ConfigMap {
    let (host, port) = place.address(namespace);
    let mut data = BTreeMap::from([
        ("host".to_string(), host),
        ("port".to_string(), port.to_string()),
        ("databases".to_string(), databases.join(",")),
        ("generation".to_string(), generation.to_string()),
    ]);
    if let Place::Cluster(c) = place {
        data.insert("cluster".into(), c.clone());
    }
    ConfigMap { metadata: meta(namespace, name, migration), data: Some(data), ..ConfigMap::default() }
}

/// The generation the ConfigMap publishes now (0 when there is none).
pub async fn current_generation(client: &kube::Client, namespace: &str, name: &str) -> Result<i64, WorkError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|c| c.data)
        .and_then(|d| d.get("generation").and_then(|g| g.parse().ok()))
        .unwrap_or(0))
}

/// Points the data source at `place`. Idempotent; the ConfigMap goes last,
/// so a client that reads a new generation finds the Service moved already.
pub struct Publish<'a> {
    pub namespace: &'a str,
    pub migration: &'a str,
    pub service: Option<&'a str>,
    pub config_map: Option<&'a str>,
    pub databases: &'a [String],
    pub generation: i64,
}

impl Publish<'_> {
    pub async fn to(&self, client: &kube::Client, place: &Place) -> Result<(), WorkError> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        if let Some(name) = self.service {
            let svc = service(self.namespace, name, self.migration, place);
            Api::<Service>::namespaced(client.clone(), self.namespace).patch(name, &pp, &Patch::Apply(&svc)).await?;
            if let Some(ep) = endpoints(self.namespace, name, self.migration, place) {
                Api::<Endpoints>::namespaced(client.clone(), self.namespace)
                    .patch(name, &pp, &Patch::Apply(&ep))
                    .await?;
            }
        }
        if let Some(name) = self.config_map {
            let cm = config_map(self.namespace, name, self.migration, place, self.databases, self.generation);
            Api::<ConfigMap>::namespaced(client.clone(), self.namespace).patch(name, &pp, &Patch::Apply(&cm)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(Place::external("10.1.2.3", 3307), Place::ExternalIp { ip: "10.1.2.3".into(), port: 3307 });
        assert_eq!(
            Place::external("legacy.db.corp", 3306),
            Place::ExternalHost { host: "legacy.db.corp".into(), port: 3306 }
        );
        assert_eq!(Place::Cluster("db".into()).endpoint("prod"), "db-primary.prod.svc:3306");
    }

    #[test]
    fn a_cluster_data_source_selects_its_primary() {
        let s = service("prod", "orders-db", "m", &Place::Cluster("db".into()));
        let spec = s.spec.unwrap();
        assert_eq!(spec.selector.unwrap()[objects::ROLE_LABEL], ROLE_PRIMARY);
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert!(s.metadata.owner_references.is_none(), "outlives the Migration");
        assert!(endpoints("prod", "orders-db", "m", &Place::Cluster("db".into())).is_none());
    }

    #[test]
    fn an_external_ip_gets_endpoints_and_a_host_gets_external_name() {
        let ip = Place::external("10.1.2.3", 3307);
        let spec = service("prod", "orders-db", "m", &ip).spec.unwrap();
        assert!(spec.selector.is_none());
        assert_eq!(spec.ports.unwrap()[0].target_port, Some(IntOrString::Int(3307)));
        let ep = endpoints("prod", "orders-db", "m", &ip).unwrap();
        assert_eq!(ep.subsets.unwrap()[0].addresses.as_ref().unwrap()[0].ip, "10.1.2.3");
        assert!(
            endpoints("prod", "orders-db", "m", &Place::external("127.0.0.1", 3306)).is_none(),
            "refused by the API"
        );
        assert!(routable("10.0.0.1") && !routable("169.254.1.1") && !routable("::1") && !routable("fe80::1"));
        let host = service("prod", "orders-db", "m", &Place::external("legacy.corp", 3306)).spec.unwrap();
        assert_eq!((host.type_.as_deref(), host.external_name.as_deref()), (Some("ExternalName"), Some("legacy.corp")));
    }

    #[test]
    fn config_map_publishes_address_and_generation() {
        let cm = config_map("prod", "orders-db", "m", &Place::Cluster("db".into()), &["shop".into(), "crm".into()], 2);
        let d = cm.data.unwrap();
        assert_eq!(d["host"], "db-primary.prod.svc");
        assert_eq!(d["port"], "3306");
        assert_eq!(d["databases"], "shop,crm");
        assert_eq!(d["generation"], "2");
        assert_eq!(d["cluster"], "db");
    }
}

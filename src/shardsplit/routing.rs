//! The routing ConfigMap that sharding-aware clients read: the rule, the
//! shard map, the phase and a generation. `docs/routing.md` is its contract.
//! It has no owner reference: applications keep reading it after the
//! ShardSplit is gone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use super::api::{Algorithm, ShardSplitSpec, TableRef};
use crate::cluster::objects::{self, MYSQL_PORT};
use crate::k8s::FIELD_MANAGER;
use crate::work::error::WorkError;

pub const SHARDSPLIT_LABEL: &str = "switchyard.io/shardsplit";
pub const DOCUMENT_KEY: &str = "routing.json";

/// Where applications send their reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The old table only.
    Source,
    /// The shards; the operator applies their writes to the old table too.
    DualWrite,
    /// The shards; the old table is retired.
    Shards,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Source => "source",
            Phase::DualWrite => "dual-write",
            Phase::Shards => "shards",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub generation: i64,
    pub phase: String,
    pub rule: Rule,
    pub source: Place,
    pub shards: Vec<Place>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub column: String,
    pub algorithm: String,
    pub shards: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    pub shard: i32,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A table and how to reach the primary holding it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Place {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<i32>,
    pub cluster: String,
    pub service: String,
    pub host: String,
    pub port: i32,
    pub database: String,
    pub table: String,
}

fn place(namespace: &str, shard: Option<i32>, t: &TableRef) -> Place {
    let service = objects::primary_service_name(&t.cluster);
    Place {
        shard,
        cluster: t.cluster.clone(),
        host: format!("{service}.{namespace}.svc"),
        service,
        port: MYSQL_PORT,
        database: t.database.clone(),
        table: t.table.clone(),
    }
}

pub fn document(
    namespace: &str,
    spec: &ShardSplitSpec,
    targets: &[TableRef],
    phase: Phase,
    generation: i64,
) -> Document {
    let algorithm = match spec.rule.algorithm {
        Algorithm::Hash => "hash",
        Algorithm::Mod => "mod",
        Algorithm::Range => "range",
    };
    Document {
        generation,
        phase: phase.as_str().into(),
        rule: Rule {
            column: spec.rule.column.clone(),
            algorithm: algorithm.into(),
            shards: spec.rule.shards,
            ranges: spec
                .rule
                .ranges
                .iter()
                .map(|r| Range { shard: r.shard, from: r.from.clone(), to: r.to.clone() })
                .collect(),
        },
        source: place(namespace, None, &spec.source),
        shards: targets.iter().enumerate().map(|(i, t)| place(namespace, Some(i as i32), t)).collect(),
    }
}

pub fn config_map(namespace: &str, name: &str, split: &str, doc: &Document) -> ConfigMap {
    let json = serde_json::to_string_pretty(doc).unwrap_or_default();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (objects::MANAGED_BY_LABEL.to_string(), objects::OPERATOR_NAME.to_string()),
                (SHARDSPLIT_LABEL.to_string(), split.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("phase".to_string(), doc.phase.clone()),
            ("generation".to_string(), doc.generation.to_string()),
            (DOCUMENT_KEY.to_string(), json),
        ])),
        ..ConfigMap::default()
    }
}

/// What the ConfigMap says now: (phase, generation), None if it is absent.
pub async fn current(client: &kube::Client, namespace: &str, name: &str) -> Result<Option<(String, i64)>, WorkError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.and_then(|c| c.data).map(|d| {
        let phase = d.get("phase").cloned().unwrap_or_default();
        let generation = d.get("generation").and_then(|g| g.parse().ok()).unwrap_or(0);
        (phase, generation)
    }))
}

/// Publishes `phase`. The generation grows only when the phase changes, so
/// publishing again after a restart is a no-op for clients. Returns the
/// generation now published.
pub async fn publish(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    split: &str,
    spec: &ShardSplitSpec,
    targets: &[TableRef],
    phase: Phase,
) -> Result<i64, WorkError> {
    let generation = match current(client, namespace, name).await? {
        Some((p, g)) if p == phase.as_str() => g.max(1),
        Some((_, g)) => g + 1,
        None => 1,
    };
    let cm = config_map(namespace, name, split, &document(namespace, spec, targets, phase, generation));
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    Api::<ConfigMap>::namespaced(client.clone(), namespace).patch(name, &pp, &Patch::Apply(&cm)).await?;
    Ok(generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shardsplit::api::*;

    #[test]
    fn the_document_names_every_shard_and_the_phase() {
        let spec = ShardSplitSpec {
            source: TableRef { cluster: "db".into(), database: "shop".into(), table: "orders".into() },
            rule: ShardRule {
                column: "id".into(),
                algorithm: Algorithm::Range,
                shards: 2,
                ranges: vec![
                    KeyRange { shard: 0, from: None, to: Some("100".into()) },
                    KeyRange { shard: 1, from: Some("100".into()), to: None },
                ],
            },
            targets: ShardTargets::default(),
            routing: Routing { config_map: "orders-routing".into() },
            postpone_completion: false,
            rollback: false,
            retire: Retire::default(),
            throttle: Default::default(),
            switch: Default::default(),
            cancel: false,
        };
        let targets = vec![
            TableRef { cluster: "a".into(), database: "shop".into(), table: "orders".into() },
            TableRef { cluster: "b".into(), database: "shop".into(), table: "orders".into() },
        ];
        let doc = document("prod", &spec, &targets, Phase::DualWrite, 3);
        assert_eq!(doc.shards[1].host, "b-primary.prod.svc");
        assert_eq!(doc.shards[1].shard, Some(1));
        assert_eq!(doc.source.service, "db-primary");
        let cm = config_map("prod", "orders-routing", "split", &doc);
        let data = cm.data.unwrap();
        assert_eq!((data["phase"].as_str(), data["generation"].as_str()), ("dual-write", "3"));
        let back: Document = serde_json::from_str(&data[DOCUMENT_KEY]).unwrap();
        assert_eq!(back, doc);
        assert_eq!(back.rule.ranges[1].from.as_deref(), Some("100"));
        assert!(cm.metadata.owner_references.is_none(), "outlives the ShardSplit");
    }
}

//! Owner references: everything Switchyard creates for a resource is owned by
//! it, so Kubernetes' garbage collector removes it with the resource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

/// A controller owner reference to `owner`, or `None` while it has no uid
/// (a resource not yet persisted cannot own anything).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::api::{MySQLCluster, MySQLClusterSpec};

    #[test]
    fn owner_ref_needs_a_uid() {
        let mut c = MySQLCluster::new("db", MySQLClusterSpec::default());
        assert!(controller_ref(&c).is_none());
        c.metadata.uid = Some("u-1".into());
        let r = controller_ref(&c).unwrap();
        assert_eq!(r.kind, "MySQLCluster");
        assert_eq!(r.api_version, "switchyard.io/v1alpha1");
        assert_eq!(r.controller, Some(true));
    }
}

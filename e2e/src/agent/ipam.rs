//! Pod addresses. Every pod gets its own loopback address so each mariadbd can
//! listen on port 3306 like in a real cluster. Linux routes all of 127/8 to `lo`,
//! so no interface setup is needed. Allocations are kept in `ips.json`, keyed by
//! namespace/name, so a StatefulSet pod that is recreated (or an agent that is
//! restarted) gets the same address back.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::error::{AgentError, Result};

/// 127.0.0.1 is the node itself; leave the first few for host services.
const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
const LAST: Ipv4Addr = Ipv4Addr::new(127, 0, 255, 254);

pub struct Ipam {
    path: PathBuf,
    by_pod: BTreeMap<String, Ipv4Addr>,
}

fn key(namespace: &str, pod: &str) -> String {
    format!("{namespace}/{pod}")
}

impl Ipam {
    pub fn load(path: &Path) -> Result<Self> {
        let by_pod = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(map) => map,
                Err(source) => {
                    // Losing the allocations only costs address stability;
                    // refusing to start would cost every pod. Keep the file.
                    let aside = path.with_extension("json.corrupt");
                    tracing::error!(file = %path.display(), error = %source, aside = %aside.display(), "unreadable address allocations; starting afresh");
                    std::fs::rename(path, &aside)
                        .map_err(AgentError::io(format!("moving {} aside", path.display())))?;
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(AgentError::io(format!("reading {}", path.display()))(e)),
        };
        Ok(Self { path: path.to_path_buf(), by_pod })
    }

    pub fn lookup(&self, namespace: &str, pod: &str) -> Option<Ipv4Addr> {
        self.by_pod.get(&key(namespace, pod)).copied()
    }

    /// The pod's address, allocating (and persisting) one on first use.
    pub fn allocate(&mut self, namespace: &str, pod: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.lookup(namespace, pod) {
            return Ok(ip);
        }
        let used: HashSet<Ipv4Addr> = self.by_pod.values().copied().collect();
        let ip = next_free(&used).ok_or(AgentError::AddressesExhausted)?;
        self.by_pod.insert(key(namespace, pod), ip);
        self.save()?;
        Ok(ip)
    }

    /// Forget the addresses of namespaces that no longer exist, so test
    /// namespaces do not leak addresses forever; `in_use` (namespace/pod keys
    /// of pods the agent runs) are kept whatever the namespace list says.
    /// Returns how many were freed.
    pub fn retain_namespaces(&mut self, live: &HashSet<String>, in_use: &HashSet<String>) -> Result<usize> {
        let before = self.by_pod.len();
        self.by_pod.retain(|k, _| {
            let ns = k.split('/').next().unwrap_or_default();
            live.contains(ns) || in_use.contains(k)
        });
        let freed = before - self.by_pod.len();
        if freed > 0 {
            self.save()?;
        }
        Ok(freed)
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.by_pod).expect("addresses serialize");
        write_atomically(&self.path, &json)
    }
}

/// Replace a file in one step so a crash never leaves half a state file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(AgentError::io(format!("creating {}", parent.display())))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(AgentError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(AgentError::io(format!("renaming {}", tmp.display())))
}

/// Lowest free address in the pod range, skipping .0 and .255 of every /24.
fn next_free(used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    (u32::from(FIRST)..=u32::from(LAST))
        .map(Ipv4Addr::from)
        .filter(|ip| !matches!(ip.octets()[3], 0 | 255))
        .find(|ip| !used.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("switchyard-ipam-{}-{}", name, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("ips.json")
    }

    #[test]
    fn allocates_from_127_0_0_10_upwards_and_is_stable() {
        let path = temp_file("stable");
        let mut ipam = Ipam::load(&path).unwrap();
        let a = ipam.allocate("ns", "db-0").unwrap();
        let b = ipam.allocate("ns", "db-1").unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 0, 0, 10));
        assert_eq!(b, Ipv4Addr::new(127, 0, 0, 11));
        assert_eq!(ipam.allocate("ns", "db-0").unwrap(), a);

        // A restarted agent reads the same allocations back.
        let mut reloaded = Ipam::load(&path).unwrap();
        assert_eq!(reloaded.lookup("ns", "db-1"), Some(b));
        assert_eq!(reloaded.allocate("other", "db-0").unwrap(), Ipv4Addr::new(127, 0, 0, 12));
    }

    #[test]
    fn freed_namespaces_return_their_addresses() {
        let path = temp_file("free");
        let mut ipam = Ipam::load(&path).unwrap();
        ipam.allocate("gone", "db-0").unwrap();
        let kept = ipam.allocate("kept", "db-0").unwrap();
        ipam.allocate("busy", "db-0").unwrap();
        let live: HashSet<String> = ["kept".to_string()].into();
        let in_use: HashSet<String> = ["busy/db-0".to_string()].into();
        assert_eq!(ipam.retain_namespaces(&live, &in_use).unwrap(), 1);
        assert!(ipam.lookup("busy", "db-0").is_some());
        assert_eq!(ipam.lookup("kept", "db-0"), Some(kept));
        assert_eq!(ipam.allocate("new", "db-0").unwrap(), Ipv4Addr::new(127, 0, 0, 10));
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let path = temp_file("corrupt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        let mut ipam = Ipam::load(&path).unwrap();
        assert_eq!(ipam.allocate("ns", "db-0").unwrap(), Ipv4Addr::new(127, 0, 0, 10));
        assert!(path.with_extension("json.corrupt").exists());
    }

    #[test]
    fn skips_network_and_broadcast_like_octets() {
        let used: HashSet<Ipv4Addr> = (10..=254).map(|d| Ipv4Addr::new(127, 0, 0, d)).collect();
        assert_eq!(next_free(&used), Some(Ipv4Addr::new(127, 0, 1, 1)));
    }
}

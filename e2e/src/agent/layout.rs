//! Where the agent keeps things on disk. One place, so the `signal`
//! subcommand, the e2e harness and the agent agree on the paths.

use std::path::{Path, PathBuf};

/// Unix sockets are limited to 108 bytes (sun_path); keep a margin.
const MAX_SOCKET_PATH: usize = 100;

#[derive(Clone, Debug)]
pub struct StateLayout {
    root: PathBuf,
}

impl StateLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pods_root(&self) -> PathBuf {
        self.root.join("pods")
    }

    pub fn pod(&self, namespace: &str, pod: &str) -> PodPaths {
        PodPaths { dir: self.pods_root().join(namespace).join(pod) }
    }

    pub fn volumes_root(&self) -> PathBuf {
        self.root.join("volumes")
    }

    pub fn claim_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.volumes_root().join(namespace).join(claim)
    }

    pub fn ips_file(&self) -> PathBuf {
        self.root.join("ips.json")
    }
}

/// Where sockets go whose path in the run dir would be too long.
pub const SHORT_SOCKET_DIR: &str = "/tmp/switchyard-sockets";

/// The run directory of one pod: `<state>/pods/<ns>/<pod>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPaths {
    pub dir: PathBuf,
}

impl PodPaths {
    pub fn my_cnf(&self) -> PathBuf {
        self.dir.join("my.cnf")
    }

    /// Rewritten copies of the pod's own option files, included by my.cnf.
    pub fn cnf_dir(&self) -> PathBuf {
        self.dir.join("cnf.d")
    }

    pub fn socket(&self) -> PathBuf {
        let socket = self.dir.join("mysqld.sock");
        if socket.as_os_str().len() <= MAX_SOCKET_PATH {
            return socket;
        }
        // Long namespace/pod names would overflow sun_path; fall back to a
        // short, stable name derived from the run directory.
        PathBuf::from(format!("{SHORT_SOCKET_DIR}/{:016x}.sock", fnv1a(self.dir.as_os_str().as_encoded_bytes())))
    }

    /// Written by mariadbd itself (pid-file option).
    pub fn server_pid_file(&self) -> PathBuf {
        self.dir.join("mysqld.pid")
    }

    /// Written by the agent right after spawning: pid, start time, pod uid.
    pub fn process_record(&self) -> PathBuf {
        self.dir.join("process.json")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("mysqld.log")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    pub fn volume(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    /// Datadir used when no volume is mounted at /var/lib/mysql; dies with the pod.
    pub fn default_datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Holds the uid of the pod incarnation the directory belongs to.
    pub fn uid_file(&self) -> PathBuf {
        self.dir.join("uid")
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_paths_follow_the_documented_layout() {
        let layout = StateLayout::new("/var/lib/switchyard-localenv/node");
        let pod = layout.pod("ns1", "db-0");
        assert_eq!(pod.dir, PathBuf::from("/var/lib/switchyard-localenv/node/pods/ns1/db-0"));
        assert_eq!(pod.socket(), pod.dir.join("mysqld.sock"));
        assert_eq!(
            layout.claim_dir("ns1", "data-db-0"),
            PathBuf::from("/var/lib/switchyard-localenv/node/volumes/ns1/data-db-0")
        );
        assert_eq!(layout.ips_file(), PathBuf::from("/var/lib/switchyard-localenv/node/ips.json"));
    }

    #[test]
    fn long_socket_paths_fall_back_to_a_short_stable_name() {
        let layout = StateLayout::new("/var/lib/switchyard-localenv/node");
        let long = "x".repeat(63);
        let pod = layout.pod(&long, &long);
        let socket = pod.socket();
        assert!(socket.as_os_str().len() <= MAX_SOCKET_PATH);
        assert_eq!(socket, layout.pod(&long, &long).socket());
        assert_ne!(socket, layout.pod(&long, "other").socket());
    }
}

//! Errors of long-running work (a schema change, a migration), each with a
//! metric label and a verdict: a permanent one fails the work (what serves
//! applications stays untouched), anything else is retried from the last
//! status.

use crate::cluster::access::Unavailable;
use crate::movement::MovementError;

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The spec cannot be carried out as it stands; nothing was touched.
    #[error("{0}")]
    Invalid(String),

    #[error("{what}: {source}")]
    Sql {
        what: String,
        #[source]
        source: mysql_async::Error,
    },

    #[error(transparent)]
    Movement(#[from] MovementError),

    #[error(transparent)]
    Unavailable(#[from] Unavailable),

    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// The data is not in a state any step leaves it in.
    #[error("{0}")]
    Inconsistent(String),
}

impl WorkError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            WorkError::Invalid(_) => "invalid",
            WorkError::Sql { .. } => "mysql",
            WorkError::Movement(e) => e.metric_label(),
            WorkError::Unavailable(_) => "unavailable",
            WorkError::Kube(_) => "kube",
            WorkError::Inconsistent(_) => "inconsistent",
        }
    }

    pub fn is_permanent(&self) -> bool {
        match self {
            WorkError::Invalid(_) | WorkError::Inconsistent(_) => true,
            WorkError::Movement(e) => e.is_permanent(),
            WorkError::Sql { .. } | WorkError::Unavailable(_) | WorkError::Kube(_) => false,
        }
    }

    /// The condition reason a failure shows: InvalidSpec for a spec that
    /// cannot be carried out, Unsupported for a table or a server setting
    /// the engine refuses before it copies anything, Failed otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            WorkError::Invalid(_) => crate::k8s::conditions::REASON_INVALID_SPEC,
            WorkError::Movement(MovementError::Table { .. } | MovementError::Prerequisite { .. }) => {
                crate::k8s::conditions::REASON_UNSUPPORTED
            }
            _ => "Failed",
        }
    }

    /// The server's error code, if the server refused a statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            WorkError::Sql { source: mysql_async::Error::Server(e), .. } => Some(e.code),
            _ => None,
        }
    }
}

/// Attaches what was being done to a MySQL error.
pub trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, WorkError>;
}

impl<T> Doing<T> for Result<T, mysql_async::Error> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, WorkError> {
        self.map_err(|source| WorkError::Sql { what: what(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_labels() {
        let e = WorkError::Invalid("bad clause".into());
        assert!(e.is_permanent());
        assert_eq!(e.metric_label(), "invalid");
        let e = WorkError::Unavailable(Unavailable::NoPrimary("db".into()));
        assert!(!e.is_permanent(), "a cluster without a primary is waited out");
        assert_eq!(e.to_string(), "MySQLCluster db has no writable primary yet");
        let server = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1205,
            message: "Lock wait timeout exceeded".into(),
            state: "HY000".into(),
        });
        let e: Result<(), _> = Err(server);
        let e = e.doing(|| "locking".into()).unwrap_err();
        assert_eq!(e.server_code(), Some(1205));
        assert!(!e.is_permanent());
        assert_eq!(e.reason(), "Failed");
    }

    #[test]
    fn refusals_name_their_reason() {
        assert_eq!(WorkError::Invalid("x".into()).reason(), "InvalidSpec");
        let keyless = MovementError::Table { table: "db.t".into(), reason: "has no primary key".into() };
        assert_eq!(WorkError::Movement(keyless).reason(), "Unsupported");
        let binlog = MovementError::Prerequisite {
            server: "db".into(),
            setting: "binlog_format".into(),
            actual: "MIXED".into(),
            required: "ROW".into(),
        };
        assert_eq!(WorkError::Movement(binlog).reason(), "Unsupported");
        assert_eq!(WorkError::Inconsistent("differs".into()).reason(), "Failed");
    }
}

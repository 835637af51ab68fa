//! Errors of a schema change, each with a metric label and a verdict: a
//! permanent one fails the change (the original stays untouched), anything
//! else is retried from the last status.

use crate::cluster::access::Unavailable;
use crate::movement::MovementError;

#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    /// The clause or the table cannot be changed this way; nothing was touched.
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

    /// The tables are not in a state any step leaves them in.
    #[error("{0}")]
    Inconsistent(String),
}

impl DdlError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            DdlError::Invalid(_) => "invalid",
            DdlError::Sql { .. } => "mysql",
            DdlError::Movement(e) => e.metric_label(),
            DdlError::Unavailable(_) => "unavailable",
            DdlError::Kube(_) => "kube",
            DdlError::Inconsistent(_) => "inconsistent",
        }
    }

    pub fn is_permanent(&self) -> bool {
        match self {
            DdlError::Invalid(_) | DdlError::Inconsistent(_) => true,
            DdlError::Movement(e) => e.is_permanent(),
            DdlError::Sql { .. } | DdlError::Unavailable(_) | DdlError::Kube(_) => false,
        }
    }

    /// The server's error code, if the server refused a statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            DdlError::Sql { source: mysql_async::Error::Server(e), .. } => Some(e.code),
            _ => None,
        }
    }
}

/// Attaches what was being done to a MySQL error.
pub trait Doing<T> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, DdlError>;
}

impl<T> Doing<T> for Result<T, mysql_async::Error> {
    fn doing(self, what: impl FnOnce() -> String) -> Result<T, DdlError> {
        self.map_err(|source| DdlError::Sql { what: what(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_labels() {
        let e = DdlError::Invalid("bad clause".into());
        assert!(e.is_permanent());
        assert_eq!(e.metric_label(), "invalid");
        let e = DdlError::Unavailable(Unavailable::NoPrimary("db".into()));
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
    }
}

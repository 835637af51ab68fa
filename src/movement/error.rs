//! What stops a data movement. Every variant is a reason a DBA can act on; the
//! metric label lets a dashboard tell a misconfigured source from a flaky one.

#[derive(Debug, thiserror::Error)]
pub enum MovementError {
    /// A setting on a server makes lossless movement impossible.
    #[error("{server}: {setting} is {actual}; it must be {required}")]
    Prerequisite { server: String, setting: String, actual: String, required: String },

    /// The table cannot be chunked or mapped as asked.
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },

    /// The binary log carries something the engine cannot apply safely. The
    /// stream stops rather than skip it.
    #[error("binary log at {position}: {reason}")]
    Binlog { position: String, reason: String },

    /// A statement changed a table that is being moved.
    #[error("DDL on a table being moved, at {position}: {statement}")]
    Ddl { position: String, statement: String },

    /// The checkpoint does not fit this job, or its binary log is gone.
    #[error("checkpoint: {0}")]
    Checkpoint(String),

    #[error("{endpoint}: {source}")]
    MySql {
        endpoint: String,
        #[source]
        source: mysql_async::Error,
    },

    #[error("{0}")]
    Internal(String),
}

impl MovementError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            MovementError::Prerequisite { .. } => "prerequisite",
            MovementError::Table { .. } => "table",
            MovementError::Binlog { .. } => "binlog",
            MovementError::Ddl { .. } => "ddl",
            MovementError::Checkpoint(_) => "checkpoint",
            MovementError::MySql { .. } => "mysql",
            MovementError::Internal(_) => "internal",
        }
    }

    /// Errors that a retry cannot fix: the caller should stop and report
    /// rather than back off and try again.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, MovementError::MySql { .. } | MovementError::Internal(_))
    }
}

pub type Result<T, E = MovementError> = std::result::Result<T, E>;

/// Attaches the endpoint's name to a driver error.
pub(crate) trait At<T> {
    fn at(self, endpoint: &str) -> Result<T>;
}

impl<T> At<T> for std::result::Result<T, mysql_async::Error> {
    fn at(self, endpoint: &str) -> Result<T> {
        self.map_err(|source| MovementError::MySql { endpoint: endpoint.to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_retry_cannot_fix_is_permanent() {
        let ddl = MovementError::Ddl { position: "f:4".into(), statement: "ALTER TABLE t".into() };
        assert!(ddl.is_permanent());
        assert_eq!(ddl.metric_label(), "ddl");
        let dropped = MovementError::MySql {
            endpoint: "source".into(),
            source: mysql_async::Error::Other("connection reset".into()),
        };
        assert!(!dropped.is_permanent(), "a dropped connection is retried");
        assert_eq!(dropped.metric_label(), "mysql");
        assert!(MovementError::Checkpoint("binlog purged".into()).is_permanent());
    }
}

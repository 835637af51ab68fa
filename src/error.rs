//! Errors of a reconcile. Each has a short label for the failure metric, so a
//! dashboard can tell API trouble from MySQL trouble without parsing text.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),

    #[error("{kind} {name} has no namespace")]
    NotNamespaced { kind: String, name: String },

    #[error("rendering objects: {0}")]
    Build(#[from] crate::cluster::objects::BuildError),

    #[error("Secret {secret}: {reason}")]
    Credentials { secret: String, reason: String },

    #[error("schema change: {0}")]
    Work(#[from] crate::work::error::WorkError),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Encoding(_) => "encoding",
            Error::NotNamespaced { .. } => "not_namespaced",
            Error::Build(_) => "build",
            Error::Credentials { .. } => "credentials",
            Error::Work(e) => e.metric_label(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        let e = Error::NotNamespaced { kind: "OnlineDDL".into(), name: "x".into() };
        assert_eq!(e.metric_label(), "not_namespaced");
        assert_eq!(e.to_string(), "OnlineDDL x has no namespace");
        let e: Error = serde_json::from_str::<i32>("x").unwrap_err().into();
        assert_eq!(e.metric_label(), "encoding");
    }
}

//! The slice of the kubelet's HTTPS API that `kubectl logs` needs. The API
//! server proxies `kubectl logs` to `https://<node InternalIP>:<kubelet
//! port>/containerLogs/<ns>/<pod>/<container>`; here that is the pod's
//! mysqld.log. Everything else a kubelet serves (exec, attach, port-forward,
//! metrics) answers 404. The API server of the local environment does not
//! verify kubelet certificates (no --kubelet-certificate-authority), so a
//! self-signed one made with the openssl CLI is enough.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{AgentError, Result};
use super::layout::StateLayout;

pub const DEFAULT_PORT: u16 = 10250;

/// `/containerLogs/<ns>/<pod>/<container>` → its parts.
pub fn parse_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/containerLogs/")?;
    let mut parts = rest.split('/');
    let (ns, pod, container) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = |s: &str| !s.is_empty() && s != "." && s != "..";
    (parts.next().is_none() && valid(ns) && valid(pod) && valid(container)).then_some((ns, pod, container))
}

/// The query options kubectl sends that change what is returned.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
}

pub fn parse_query(query: &str) -> LogQuery {
    let mut q = LogQuery::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "follow" => q.follow = value == "true" || value == "1",
            "tailLines" => q.tail_lines = value.parse().ok(),
            "limitBytes" => q.limit_bytes = value.parse().ok(),
            _ => {}
        }
    }
    q
}

/// The last `tail_lines` lines, then at most `limit_bytes` of them.
pub fn select<'a>(text: &'a [u8], q: &LogQuery) -> &'a [u8] {
    let mut start = 0;
    if let Some(n) = q.tail_lines {
        // Skip a trailing newline so it does not count as an empty line.
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        let mut seen = 0;
        start = body.len();
        while start > 0 {
            if body[start - 1] == b'\n' {
                seen += 1;
                if seen == n {
                    break;
                }
            }
            start -= 1;
        }
        if n == 0 {
            start = text.len();
        }
    }
    let selected = &text[start..];
    match q.limit_bytes {
        Some(limit) if limit < selected.len() => &selected[..limit],
        _ => selected,
    }
}

/// A self-signed serving certificate, made once with the openssl CLI.
pub fn ensure_certificate(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(AgentError::io(format!("creating {}", dir.display())))?;
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=switchyard-node-agent"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map_err(AgentError::io("running openssl"))?;
    if !out.status.success() {
        return Err(AgentError::Invalid(format!(
            "openssl could not make the kubelet certificate: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((cert, key))
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| AgentError::Invalid(format!("{what}: {e}"));
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid("reading kubelet.crt", &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid("parsing kubelet.crt", &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("reading kubelet.key", &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("kubelet certificate", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))).boxed());
    *response.status_mut() = status;
    response
}

/// New bytes of a growing log, until the file disappears (pod deleted).
fn follow(path: PathBuf, offset: u64) -> Body {
    let chunks = futures::stream::unfold((path, offset), |(path, mut offset)| async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let bytes = tokio::fs::read(&path).await.ok()?;
            let len = bytes.len() as u64;
            if len < offset {
                offset = 0; // truncated or replaced
            }
            if len > offset {
                let chunk = Bytes::copy_from_slice(&bytes[offset as usize..]);
                offset = len;
                return Some((chunk, (path, offset)));
            }
        }
    });
    BodyExt::boxed(StreamBody::new(chunks.map(|b| Ok::<_, Infallible>(Frame::data(b)))))
}

async fn handle(
    layout: Arc<StateLayout>,
    request: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    if path == "/healthz" {
        return Ok(text(StatusCode::OK, "ok"));
    }
    let Some((namespace, pod, _container)) = parse_path(&path) else {
        return Ok(text(StatusCode::NOT_FOUND, "this node serves only /containerLogs (kubectl logs)"));
    };
    let query = parse_query(request.uri().query().unwrap_or_default());
    let log = layout.pod(namespace, pod).log();
    let Ok(content) = tokio::fs::read(&log).await else {
        return Ok(text(StatusCode::NOT_FOUND, &format!("no log for pod {namespace}/{pod} on this node")));
    };
    let selected = Bytes::copy_from_slice(select(&content, &query));
    if !query.follow {
        return Ok(Response::new(Full::new(selected).boxed()));
    }
    let head = futures::stream::once(async move { Ok::<_, Infallible>(Frame::data(selected)) });
    let rest = follow(log, content.len() as u64).into_data_stream().map(|r| r.map(Frame::data));
    Ok(Response::new(BodyExt::boxed(StreamBody::new(head.chain(rest)))))
}

/// Serve until the agent stops. Failing to bind is not fatal: the pods run
/// the same, only `kubectl logs` does not work.
pub async fn serve(layout: StateLayout, port: u16) {
    let (cert, key) = match ensure_certificate(&layout.root().join("kubelet")) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "no kubelet certificate; kubectl logs will not work");
            return;
        }
    };
    let acceptor = match acceptor(&cert, &key) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "kubelet TLS setup failed; kubectl logs will not work");
            return;
        }
    };
    let listener = match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot listen for the kubelet API; kubectl logs will not work");
            return;
        }
    };
    tracing::info!(port, "serving kubectl logs");
    let layout = Arc::new(layout);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: do not spin.
                tracing::debug!(error = %e, "kubelet API accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (acceptor, layout) = (acceptor.clone(), layout.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req| handle(layout.clone(), req));
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await
            {
                tracing::debug!(error = %e, "kubelet API connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries() {
        assert_eq!(parse_path("/containerLogs/ns/db-0/mariadb"), Some(("ns", "db-0", "mariadb")));
        assert_eq!(parse_path("/containerLogs/ns/db-0"), None);
        assert_eq!(parse_path("/containerLogs/ns/../x"), None);
        assert_eq!(parse_path("/exec/ns/db-0/mariadb"), None);
        assert_eq!(
            parse_query("follow=true&tailLines=10&timestamps=true"),
            LogQuery { follow: true, tail_lines: Some(10), limit_bytes: None }
        );
    }

    #[test]
    fn tail_and_limit() {
        let log = b"one\ntwo\nthree\n";
        let q = |tail, limit| LogQuery { follow: false, tail_lines: tail, limit_bytes: limit };
        assert_eq!(select(log, &q(None, None)), log);
        assert_eq!(select(log, &q(Some(2), None)), b"two\nthree\n");
        assert_eq!(select(log, &q(Some(5), None)), log);
        assert_eq!(select(log, &q(Some(0), None)), b"");
        assert_eq!(select(log, &q(Some(1), Some(3))), b"thr");
        assert_eq!(select(b"no newline", &q(Some(1), None)), b"no newline");
    }
}

//! `--web.config.file`: TLS, client certificates, basic auth and response headers, in the
//! exporter-toolkit format that node_exporter and every Prometheus exporter read
//! (`tls_server_config`, `basic_auth_users`, `http_server_config`), reloaded on change.
//!
//! STUB: this is the interface the HTTP server codes against; the full implementation
//! replaces the bodies, not the signatures.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a web configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid web config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// What a request may be answered with when authentication fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No or malformed `Authorization` header: 401 with `WWW-Authenticate: Basic`.
    Missing,
    /// A user or password that does not match: 401.
    Wrong,
}

/// The configuration in force; swapped whole on reload.
#[derive(Default)]
pub struct Active {
    /// `None`: plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// A handle on the web configuration (cheap to clone).
#[derive(Clone, Default)]
pub struct WebConfigWatch {
    active: Arc<Active>,
}

impl WebConfigWatch {
    /// Loads the file; `None` serves plain HTTP with no authentication.
    pub fn load(path: Option<&Path>) -> Result<Self, WebConfigError> {
        if let Some(path) = path {
            return Err(WebConfigError::Invalid {
                path: path.to_owned(),
                reason: "--web.config.file is not implemented yet".to_owned(),
            });
        }
        Ok(Self::default())
    }

    /// Starts watching the file for changes (on the current tokio runtime); a file that no
    /// longer parses keeps the last good configuration, logs why and counts a reload failure.
    pub fn spawn_reload(&self) {}

    /// The configuration in force now.
    pub fn current(&self) -> Arc<Active> {
        self.active.clone()
    }

    /// Checks the request's `Authorization` header against `basic_auth_users`; `Ok` when no
    /// users are configured.
    pub async fn authorize(&self, _headers: &HeaderMap) -> Result<(), AuthError> {
        Ok(())
    }
}

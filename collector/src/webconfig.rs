//! `--web.config.file`: TLS, client certificates, basic auth and response headers, in the
//! exporter-toolkit format that node_exporter and every Prometheus exporter read
//! (`tls_server_config`, `basic_auth_users`, `http_server_config`), reloaded on change.
//!
//! The file is parsed strictly, like exporter-toolkit's `yaml.UnmarshalStrict`: an unknown key
//! is an error naming it. Relative `cert_file`, `key_file` and `client_ca_file` paths resolve
//! against the directory of the config file. [`parse`] is the pure part (bytes in, validated
//! settings out, no file access) for tests and fuzzing; [`WebConfigWatch::load`] reads the
//! files it names and builds the rustls configuration.
//!
//! Differences from exporter-toolkit, each refused or warned about, never silently ignored:
//! - TLS 1.0/1.1 do not exist in rustls: `min_version: TLS10`/`TLS11` serves TLS 1.2 and up
//!   (warning); `max_version` below TLS12 is an error.
//! - `cipher_suites` and `curve_preferences` map onto the rustls *ring* provider; a name it does
//!   not have (CBC suites, `CurveP521`) is skipped with a warning, an unknown name is an error.
//! - `http2` is accepted; the server speaks HTTP/1.1 (ALPN `http/1.1`).
//! - `client_allowed_sans`, `rate_limit` (use `--web.rate-limit`) and
//!   `basic_auth_excluded_paths` are refused with an error saying so.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Largest web config file, and largest certificate, key or CA file it names (bound
/// `web_config_file_bytes`).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `Authorization` request header read (bound `http_authorization_bytes`).
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;
/// How often [`WebConfigWatch::spawn_reload`] looks at the files.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(3);
/// Verified (user, password) pairs remembered so a scrape does not pay bcrypt each time.
const AUTH_CACHE_ENTRIES: usize = 64;
/// bcrypt checks running at once (each takes a blocking thread for ~50-100 ms at cost 10).
const BCRYPT_CONCURRENCY: usize = 2;

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

/// What [`parse`] refuses: the text of the error names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

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

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    // exporter-toolkit keys this server does not implement: refused with a message of their own.
    rate_limit: Option<serde_yaml_ng::Value>,
    basic_auth_excluded_paths: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------------
// The file as understood.

/// A validated web config: what [`parse`] returns.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// `http_server_config.http2` (default true); accepted, HTTP/1.1 is served.
    pub http2: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// User → bcrypt hash (each checked to be one).
    pub users: BTreeMap<String, String>,
    /// Settings accepted but not applied as written (logged at load).
    pub warnings: Vec<String>,
}

/// A PEM block given inline or in a file (already joined with the config's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    Inline(String),
    File(PathBuf),
}

/// `client_auth_type`, as in Go's `crypto/tls.ClientAuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// Asks for a certificate, takes any or none, verifies none.
    RequestClientCert,
    /// Requires a certificate, verifies none.
    RequireAnyClientCert,
    /// Takes none, or one that verifies against the client CA.
    VerifyClientCertIfGiven,
    /// Requires one that verifies against the client CA.
    RequireAndVerifyClientCert,
}

/// `tls_server_config`, validated.
#[derive(Debug)]
pub struct TlsSettings {
    pub cert: PemSource,
    pub key: PemSource,
    pub client_ca: Option<PemSource>,
    pub client_auth: ClientAuth,
    /// Enabled versions, TLS 1.2 and/or 1.3.
    pub tls12: bool,
    pub tls13: bool,
    /// rustls cipher suites (TLS 1.3 suites always included); `None`: the provider's.
    pub cipher_suites: Option<Vec<rustls::SupportedCipherSuite>>,
    /// rustls key-exchange groups in preference order; `None`: the provider's.
    pub kx_groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    /// `prefer_server_cipher_suites` (default true).
    pub prefer_server_cipher_suites: bool,
}

/// The headers exporter-toolkit lets a config set, with the values it allows (empty: any).
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn bad(reason: impl Into<String>) -> ParseError {
    ParseError(reason.into())
}

/// Parses and validates a web config (no file is read). `base_dir` is the directory relative
/// file names are joined with: the config file's own, as exporter-toolkit does.
pub fn parse(text: &[u8], base_dir: &Path) -> Result<Parsed, ParseError> {
    if text.len() as u64 > MAX_CONFIG_BYTES {
        crate::limits::exceeded("web_config_file_bytes");
        return Err(bad(format!(
            "larger than {MAX_CONFIG_BYTES} bytes (web_config_file_bytes)"
        )));
    }
    let text = std::str::from_utf8(text).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    // An empty file (or only comments) is a valid config that turns nothing on.
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_yaml_ng::from_str::<Option<RawConfig>>(text)
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or_default()
    };
    if raw.rate_limit.is_some() {
        return Err(bad(
            "rate_limit is not supported here: use --web.rate-limit and --web.rate-burst",
        ));
    }
    if raw.basic_auth_excluded_paths.is_some() {
        return Err(bad(
            "basic_auth_excluded_paths is not supported: every path asks for basic auth",
        ));
    }
    let mut warnings = Vec::new();
    let tls = match raw.tls_server_config {
        Some(t) => parse_tls(t, base_dir, &mut warnings)?,
        None => None,
    };
    let http = raw.http_server_config.unwrap_or_default();
    let mut headers = Vec::new();
    for (name, value) in http.headers.unwrap_or_default() {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            return Err(bad(format!(
                "http_server_config.headers: HTTP header {name:?} can not be configured (allowed: {})",
                ALLOWED_HEADERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if value.is_empty() {
            continue; // "Unset if blank."
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(bad(format!(
                "http_server_config.headers: invalid value for {name}: expected one of {allowed:?}, got {value:?}"
            )));
        }
        let header_value = HeaderValue::from_str(&value).map_err(|_| {
            bad(format!(
                "http_server_config.headers: {name}: {value:?} is not a valid header value"
            ))
        })?;
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            bad(format!(
                "http_server_config.headers: {name:?} is not a header name"
            ))
        })?;
        headers.push((header_name, header_value));
    }
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if let Err(e) = hash.parse::<bcrypt::HashParts>() {
            return Err(bad(format!(
                "basic_auth_users: the password of {user:?} is not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
            )));
        }
    }
    Ok(Parsed {
        tls,
        http2: http.http2.unwrap_or(true),
        headers,
        users,
        warnings,
    })
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn pem_source(
    inline: Option<String>,
    file: Option<String>,
    inline_key: &str,
    file_key: &str,
    base_dir: &Path,
) -> Result<Option<PemSource>, ParseError> {
    match (nonempty(inline), nonempty(file)) {
        (Some(_), Some(_)) => Err(bad(format!(
            "tls_server_config: give {inline_key} or {file_key}, not both"
        ))),
        (Some(text), None) => Ok(Some(PemSource::Inline(text))),
        (None, Some(path)) => Ok(Some(PemSource::File(base_dir.join(path)))),
        (None, None) => Ok(None),
    }
}

fn tls_version(s: &str, key: &str) -> Result<u8, ParseError> {
    match s {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(bad(format!(
            "tls_server_config.{key}: unknown TLS version {other:?} (TLS10, TLS11, TLS12 or TLS13)"
        ))),
    }
}

fn parse_tls(
    t: RawTls,
    base_dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<TlsSettings>, ParseError> {
    let cert = pem_source(t.cert, t.cert_file, "cert", "cert_file", base_dir)?;
    let key = pem_source(t.key, t.key_file, "key", "key_file", base_dir)?;
    let client_ca = pem_source(
        t.client_ca,
        t.client_ca_file,
        "client_ca",
        "client_ca_file",
        base_dir,
    )?;
    let client_auth_type = nonempty(t.client_auth_type);
    // exporter-toolkit: a tls_server_config that sets none of these serves plain HTTP.
    if cert.is_none() && key.is_none() && client_ca.is_none() && client_auth_type.is_none() {
        return Ok(None);
    }
    let cert = cert.ok_or_else(|| bad("tls_server_config: missing one of cert or cert_file"))?;
    let key = key.ok_or_else(|| bad("tls_server_config: missing one of key or key_file"))?;
    let client_auth = match client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // "RequireClientCert": kept by exporter-toolkit for backwards compatibility.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(bad(format!(
                "tls_server_config.client_auth_type: invalid ClientAuth {other:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            )));
        }
    };
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(bad(
            "tls_server_config: client CA's have been configured without a Client Auth Policy (client_auth_type)",
        ));
    }
    if client_ca.is_none()
        && matches!(
            client_auth,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    {
        return Err(bad(format!(
            "tls_server_config: client_auth_type {client_auth:?} needs client_ca_file or client_ca to verify against"
        )));
    }
    if t.client_allowed_sans.is_some() {
        return Err(bad(
            "tls_server_config.client_allowed_sans is not supported: use a client CA that only signs allowed clients",
        ));
    }
    let min = match nonempty(t.min_version) {
        Some(v) => tls_version(&v, "min_version")?,
        None => 12,
    };
    let max = match nonempty(t.max_version) {
        Some(v) => tls_version(&v, "max_version")?,
        None => 13,
    };
    if min > max {
        return Err(bad("tls_server_config: min_version is above max_version"));
    }
    if max < 12 {
        return Err(bad(
            "tls_server_config.max_version: TLS 1.0 and 1.1 are not supported (TLS12 or TLS13)",
        ));
    }
    if min < 12 {
        warnings.push(
            "tls_server_config.min_version: TLS 1.0 and 1.1 are not supported, serving TLS 1.2 and up"
                .to_owned(),
        );
    }
    let (tls12, tls13) = (min <= 12, max >= 13);

    let cipher_suites = match t.cipher_suites.filter(|v| !v.is_empty()) {
        None => None,
        Some(names) => {
            // Go's cipher_suites only ever chooses among TLS 1.2 suites; TLS 1.3's are fixed.
            let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
            let mut chosen: Vec<rustls::SupportedCipherSuite> = all
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            let mut tls12_chosen = 0usize;
            for name in &names {
                match all
                    .iter()
                    .find(|s| format!("{:?}", s.suite()) == name.as_str())
                {
                    Some(s) if s.version() == &rustls::version::TLS13 => {}
                    Some(s) => {
                        if !chosen.contains(s) {
                            chosen.push(*s);
                            tls12_chosen += 1;
                        }
                    }
                    None if name.starts_with("TLS_") => warnings.push(format!(
                        "tls_server_config.cipher_suites: {name} is not available in rustls, skipped"
                    )),
                    None => {
                        return Err(bad(format!(
                            "tls_server_config.cipher_suites: unknown cipher {name:?}"
                        )));
                    }
                }
            }
            if tls12 && tls12_chosen == 0 && !tls13 {
                return Err(bad(
                    "tls_server_config.cipher_suites: none of the listed TLS 1.2 cipher suites is available in rustls",
                ));
            }
            Some(chosen)
        }
    };

    let kx_groups = match t.curve_preferences.filter(|v| !v.is_empty()) {
        None => None,
        Some(names) => {
            let provider = rustls::crypto::ring::default_provider();
            let mut chosen: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
            for name in &names {
                let group = match name.as_str() {
                    "X25519" => rustls::NamedGroup::X25519,
                    "CurveP256" => rustls::NamedGroup::secp256r1,
                    "CurveP384" => rustls::NamedGroup::secp384r1,
                    "CurveP521" => rustls::NamedGroup::secp521r1,
                    other => {
                        return Err(bad(format!(
                            "tls_server_config.curve_preferences: unknown curve {other:?} (CurveP256, CurveP384, CurveP521 or X25519)"
                        )));
                    }
                };
                match provider.kx_groups.iter().find(|g| g.name() == group) {
                    Some(g) => chosen.push(*g),
                    None => warnings.push(format!(
                        "tls_server_config.curve_preferences: {name} is not available in rustls, skipped"
                    )),
                }
            }
            if chosen.is_empty() {
                return Err(bad(
                    "tls_server_config.curve_preferences: none of the listed curves is available in rustls",
                ));
            }
            Some(chosen)
        }
    };

    Ok(Some(TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        tls12,
        tls13,
        cipher_suites,
        kx_groups,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
    }))
}

// ---------------------------------------------------------------------------------------------
// Building the rustls configuration (reads the files).

/// Reads at most [`MAX_CONFIG_BYTES`] of `path`.
fn read_bounded(path: &Path) -> Result<Vec<u8>, WebConfigError> {
    let read_err = |source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_CONFIG_BYTES {
        crate::limits::exceeded("web_config_file_bytes");
        return Err(WebConfigError::Invalid {
            path: path.to_owned(),
            reason: format!("larger than {MAX_CONFIG_BYTES} bytes (web_config_file_bytes)"),
        });
    }
    Ok(buf)
}

/// The PEM text of `src`, and what to call it in errors.
fn pem_bytes(src: &PemSource, config: &Path) -> Result<(Vec<u8>, PathBuf), WebConfigError> {
    match src {
        PemSource::Inline(text) => Ok((text.as_bytes().to_vec(), config.to_owned())),
        PemSource::File(path) => Ok((read_bounded(path)?, path.clone())),
    }
}

/// Accepts any client certificate (RequestClientCert, RequireAnyClientCert), as Go does;
/// the handshake signature is still checked, so the client holds the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Builds the acceptor for `tls`; `config` names the file in errors about inline PEM.
pub fn build_tls(
    tls: &TlsSettings,
    config: &Path,
) -> Result<tokio_rustls::TlsAcceptor, WebConfigError> {
    let invalid = |path: &Path, reason: String| WebConfigError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let (cert_pem, cert_path) = pem_bytes(&tls.cert, config)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&cert_path, format!("server certificate: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            &cert_path,
            "server certificate: no CERTIFICATE block".to_owned(),
        ));
    }
    let (key_pem, key_path) = pem_bytes(&tls.key, config)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(&key_path, format!("server key: {e}")))?;

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = &tls.cipher_suites {
        provider.cipher_suites = suites.clone();
    }
    if let Some(groups) = &tls.kx_groups {
        provider.kx_groups = groups.clone();
    }
    let provider = Arc::new(provider);

    let verifier: Arc<dyn ClientCertVerifier> = match tls.client_auth {
        ClientAuth::NoClientCert => rustls::server::WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: tls.client_auth == ClientAuth::RequireAnyClientCert,
                algs: provider.signature_verification_algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some(ca) = &tls.client_ca else {
                return Err(invalid(
                    config,
                    "client_auth_type needs a client CA".to_owned(),
                ));
            };
            let (ca_pem, ca_path) = pem_bytes(ca, config)?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca_pem) {
                let c = c.map_err(|e| invalid(&ca_path, format!("client CA: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| invalid(&ca_path, format!("client CA: {e}")))?;
            }
            if roots.is_empty() {
                return Err(invalid(
                    &ca_path,
                    "client CA: no CERTIFICATE block".to_owned(),
                ));
            }
            let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            );
            let builder = if tls.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|e| invalid(&ca_path, format!("client CA: {e}")))?
        }
    };
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if tls.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(config, format!("tls_server_config: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                &cert_path,
                format!("server certificate and key do not go together: {e}"),
            )
        })?;
    server.ignore_client_order = tls.prefer_server_cipher_suites;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

// ---------------------------------------------------------------------------------------------
// The watch: what is in force, basic auth, reload.

/// Users and the decoy hash a missing user is checked against (same cost as a real one).
#[derive(Default)]
struct Users {
    hashes: BTreeMap<String, String>,
    decoy: OnceLock<String>,
}

impl Users {
    fn decoy(&self) -> &str {
        self.decoy.get_or_init(|| {
            let cost = self
                .hashes
                .values()
                .find_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map_or(10, |p| p.get_cost());
            bcrypt::hash("decoy password for a user that does not exist", cost).unwrap_or_default()
        })
    }
}

/// What one load produced, with a fingerprint of every file it read.
#[derive(Default)]
struct Loaded {
    active: Arc<Active>,
    users: Arc<Users>,
    files: Vec<PathBuf>,
    fingerprint: [u8; 32],
}

/// Bounded FIFO set of verified sha256(user, hash, password).
#[derive(Default)]
struct AuthCache {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl AuthCache {
    fn insert(&mut self, key: [u8; 32]) {
        if self.set.insert(key) {
            self.order.push_back(key);
            while self.order.len() > AUTH_CACHE_ENTRIES {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

struct Inner {
    path: Option<PathBuf>,
    state: RwLock<Arc<Loaded>>,
    /// The fingerprint of the last files that failed to load (not retried until they change).
    failed: Mutex<Option<[u8; 32]>>,
    cache: Mutex<AuthCache>,
    bcrypt: tokio::sync::Semaphore,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            path: None,
            state: RwLock::default(),
            failed: Mutex::default(),
            cache: Mutex::default(),
            bcrypt: tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY),
        }
    }
}

/// A handle on the web configuration (cheap to clone).
#[derive(Clone, Default)]
pub struct WebConfigWatch {
    inner: Arc<Inner>,
}

static CONFIGURED: AtomicBool = AtomicBool::new(false);
static RELOAD_FAILURES: AtomicU64 = AtomicU64::new(0);
/// f64 bits of the Unix time of the last successful load.
static LAST_SUCCESS: AtomicU64 = AtomicU64::new(0);

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Writes `dataplane_collector_web_config_reload_failures_total` and
/// `dataplane_collector_web_config_last_reload_success_timestamp_seconds` (nothing without
/// `--web.config.file`).
pub fn encode(w: &mut crate::exposition::Writer) {
    use crate::exposition::MetricType;
    if !CONFIGURED.load(Ordering::Relaxed) {
        return;
    }
    w.family(
        "dataplane_collector_web_config_reload_failures_total",
        "Changes to --web.config.file (or the certificates it names) that did not load; the previous configuration stays in force.",
        MetricType::Counter,
    );
    w.sample("dataplane_collector_web_config_reload_failures_total")
        .value_u64(RELOAD_FAILURES.load(Ordering::Relaxed));
    w.family(
        "dataplane_collector_web_config_last_reload_success_timestamp_seconds",
        "Unix time --web.config.file was last loaded successfully.",
        MetricType::Gauge,
    );
    w.sample("dataplane_collector_web_config_last_reload_success_timestamp_seconds")
        .value_f64(f64::from_bits(LAST_SUCCESS.load(Ordering::Relaxed)));
}

/// sha256 over the config file and every file it names (missing files hash as such).
fn fingerprint(config: &Path, files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in std::iter::once(config).chain(files.iter().map(PathBuf::as_path)) {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
        match read_bounded(p) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) => h.update(format!("error: {e}").as_bytes()),
        }
        h.update([0]);
    }
    h.finalize().into()
}

/// Reads, parses and builds everything `path` names.
fn load_file(path: &Path) -> Result<Loaded, WebConfigError> {
    let text = read_bounded(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let parsed = parse(&text, base).map_err(|e| WebConfigError::Invalid {
        path: path.to_owned(),
        reason: e.0,
    })?;
    for w in &parsed.warnings {
        tracing::warn!(path = %path.display(), "web config: {w}");
    }
    let mut files = Vec::new();
    let tls = match &parsed.tls {
        Some(t) => {
            for src in [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()]
                .into_iter()
                .flatten()
            {
                if let PemSource::File(p) = src {
                    files.push(p.clone());
                }
            }
            Some(build_tls(t, path)?)
        }
        None => None,
    };
    let fingerprint = fingerprint(path, &files);
    Ok(Loaded {
        active: Arc::new(Active {
            tls,
            headers: parsed.headers,
        }),
        users: Arc::new(Users {
            hashes: parsed.users,
            decoy: OnceLock::new(),
        }),
        files,
        fingerprint,
    })
}

/// The user and password of a `Basic` `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Result<(Vec<u8>, Vec<u8>), AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let raw = value.as_bytes();
    if raw.len() > MAX_AUTHORIZATION_BYTES {
        crate::limits::exceeded("http_authorization_bytes");
        return Err(AuthError::Missing);
    }
    let Some(space) = raw.iter().position(|b| *b == b' ') else {
        return Err(AuthError::Missing);
    };
    let (scheme, rest) = raw.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(AuthError::Missing);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .map_err(|_| AuthError::Missing)?;
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return Err(AuthError::Missing);
    };
    let user = decoded[..colon].to_vec();
    let password = decoded[colon + 1..].to_vec();
    Ok((user, password))
}

fn cache_key(user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user, hash.as_bytes(), password] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

impl WebConfigWatch {
    /// Loads the file; `None` serves plain HTTP with no authentication.
    pub fn load(path: Option<&Path>) -> Result<Self, WebConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let loaded = load_file(path)?;
        CONFIGURED.store(true, Ordering::Relaxed);
        LAST_SUCCESS.store(now_unix().to_bits(), Ordering::Relaxed);
        tracing::info!(
            path = %path.display(),
            tls = loaded.active.tls.is_some(),
            users = loaded.users.hashes.len(),
            "web config loaded"
        );
        Ok(WebConfigWatch {
            inner: Arc::new(Inner {
                path: Some(path.to_owned()),
                state: RwLock::new(Arc::new(loaded)),
                ..Inner::default()
            }),
        })
    }

    fn loaded(&self) -> Arc<Loaded> {
        match self.inner.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Starts watching the file for changes (on the current tokio runtime); a file that no
    /// longer parses keeps the last good configuration, logs why and counts a reload failure.
    /// Every [`RELOAD_INTERVAL`] it compares a sha256 of the config file and of the
    /// certificate, key and CA files it names with the loaded one (contents, not mtimes:
    /// a Kubernetes Secret update swaps a symlink, and two writes in one clock tick keep the
    /// mtime). The task ends when the last handle is dropped.
    pub fn spawn_reload(&self) {
        if self.inner.path.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("web config: no tokio runtime, changes to the file are not picked up");
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let watch = WebConfigWatch { inner };
                // Files are small and bounded; read them off the async workers.
                let _ = tokio::task::spawn_blocking(move || watch.reload_if_changed()).await;
            }
        });
    }

    /// Loads the files again if any changed since the last load (or the last failed attempt).
    /// `Ok(true)`: a new configuration is in force; `Ok(false)`: nothing changed; `Err`: the
    /// change does not load and the previous configuration stays (logged and counted).
    pub fn reload_if_changed(&self) -> Result<bool, WebConfigError> {
        let Some(path) = &self.inner.path else {
            return Ok(false);
        };
        let current = self.loaded();
        let now = fingerprint(path, &current.files);
        if now == current.fingerprint {
            return Ok(false);
        }
        {
            let failed = match self.inner.failed.lock() {
                Ok(f) => f,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *failed == Some(now) {
                return Ok(false);
            }
        }
        match load_file(path) {
            Ok(loaded) => {
                tracing::info!(
                    path = %path.display(),
                    tls = loaded.active.tls.is_some(),
                    users = loaded.users.hashes.len(),
                    "web config reloaded"
                );
                match self.inner.state.write() {
                    Ok(mut s) => *s = Arc::new(loaded),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
                }
                LAST_SUCCESS.store(now_unix().to_bits(), Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "web config changed but does not load; keeping the previous one");
                RELOAD_FAILURES.fetch_add(1, Ordering::Relaxed);
                match self.inner.failed.lock() {
                    Ok(mut f) => *f = Some(now),
                    Err(poisoned) => *poisoned.into_inner() = Some(now),
                }
                Err(e)
            }
        }
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<Active> {
        self.loaded().active.clone()
    }

    /// Checks the request's `Authorization` header against `basic_auth_users`; `Ok` when no
    /// users are configured. bcrypt runs on a blocking thread (at most
    /// `BCRYPT_CONCURRENCY` at once); a verified (user, password) is remembered (as a sha256,
    /// with the user's hash, so a changed hash forgets it). A user that does not exist is
    /// checked against a decoy hash of the same cost, so timing does not tell users apart.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let users = self.loaded().users.clone();
        if users.hashes.is_empty() {
            return Ok(());
        }
        let (user, password) = basic_credentials(headers)?;
        let hash = std::str::from_utf8(&user)
            .ok()
            .and_then(|u| users.hashes.get(u))
            .cloned();
        if let Some(hash) = &hash {
            let key = cache_key(&user, hash, &password);
            let hit = match self.inner.cache.lock() {
                Ok(c) => c.set.contains(&key),
                Err(poisoned) => poisoned.into_inner().set.contains(&key),
            };
            if hit {
                return Ok(());
            }
        }
        let Ok(_permit) = self.inner.bcrypt.acquire().await else {
            return Err(AuthError::Wrong);
        };
        let known = hash.is_some();
        let checked = {
            let users = users.clone();
            let password = password.clone();
            let hash = hash.clone();
            tokio::task::spawn_blocking(move || match &hash {
                Some(h) => bcrypt::verify(&password, h).unwrap_or(false),
                None => {
                    // Same work as a real check, and never a match.
                    let _ = bcrypt::verify(&password, users.decoy());
                    false
                }
            })
            .await
            .unwrap_or(false)
        };
        match hash {
            Some(hash) if checked && known => {
                let key = cache_key(&user, &hash, &password);
                match self.inner.cache.lock() {
                    Ok(mut c) => c.insert(key),
                    Err(poisoned) => poisoned.into_inner().insert(key),
                }
                Ok(())
            }
            _ => Err(AuthError::Wrong),
        }
    }
}

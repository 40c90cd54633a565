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
//! - `rate_limit` is refused with an error saying to use `--web.rate-limit`.
//!
//! The HTTP server uses it so: `load` at start (an error stops the daemon), `spawn_reload`
//! once, `current().tls` for each accepted connection (a reload applies to new connections),
//! and per request `auth_excluded(path)`, then `authorize(headers)` (401 with
//! `WWW-Authenticate: Basic` on `Err`), then `current().headers` on the response.

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
    #[serde(default, deserialize_with = "unique_map")]
    basic_auth_users: Option<BTreeMap<String, String>>,
    // exporter-toolkit keys this server does not implement: refused with a message of their own.
    rate_limit: Option<serde_yaml_ng::Value>,
    basic_auth_excluded_paths: Option<Vec<String>>,
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
    #[serde(default, deserialize_with = "unique_map")]
    headers: Option<BTreeMap<String, Scalar>>,
}

/// A map whose keys must differ (yaml.v2's `UnmarshalStrict` refuses a repeated key; a plain
/// map would keep the last one silently).
fn unique_map<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Visit<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
        type Value = Option<BTreeMap<String, V>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, V>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                }
                out.insert(k, v);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(Visit(std::marker::PhantomData))
}

/// A YAML scalar read as text, as Go's yaml does for a string field (`X-XSS-Protection: 1`).
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_yaml_ng::Value;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            Value::Number(n) => Ok(Scalar(n.to_string())),
            Value::Bool(b) => Ok(Scalar(b.to_string())),
            Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
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
    /// `basic_auth_excluded_paths`: request paths (exact match) that need no basic auth.
    pub auth_excluded_paths: Vec<String>,
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
    /// `client_allowed_sans`: the client certificate must have one of these SANs (DNS name,
    /// e-mail, IP address or URI, compared exactly as exporter-toolkit does).
    pub client_allowed_sans: Option<Vec<String>>,
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
    let mut warnings = Vec::new();
    let tls = match raw.tls_server_config {
        Some(t) => parse_tls(t, base_dir, &mut warnings)?,
        None => None,
    };
    let http = raw.http_server_config.unwrap_or_default();
    let mut headers = Vec::new();
    for (name, Scalar(value)) in http.headers.unwrap_or_default() {
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
    let auth_excluded_paths = raw.basic_auth_excluded_paths.unwrap_or_default();
    if let Some(p) = auth_excluded_paths.iter().find(|p| !p.starts_with('/')) {
        return Err(bad(format!(
            "basic_auth_excluded_paths: {p:?} is not a path (it must start with /)"
        )));
    }
    Ok(Parsed {
        tls,
        http2: http.http2.unwrap_or(true),
        headers,
        users,
        auth_excluded_paths,
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
    if t.client_allowed_sans.is_some()
        && !matches!(
            client_auth,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    {
        return Err(bad(
            "tls_server_config: client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert",
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
            if tls12 && tls12_chosen == 0 {
                if !tls13 {
                    return Err(bad(
                        "tls_server_config.cipher_suites: none of the listed TLS 1.2 cipher suites is available in rustls",
                    ));
                }
                warnings.push(
                    "tls_server_config.cipher_suites: none of the listed TLS 1.2 cipher suites is available in rustls: TLS 1.2 clients cannot connect"
                        .to_owned(),
                );
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
                warnings.push(
                    "tls_server_config.curve_preferences: none of the listed curves is available in rustls, using X25519, P-256 and P-384"
                        .to_owned(),
                );
                None
            } else {
                Some(chosen)
            }
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
        client_allowed_sans: t.client_allowed_sans,
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

/// The SANs of a DER certificate as exporter-toolkit lists them: DNS names, e-mail addresses,
/// IP addresses (Go's notation: an IPv4-mapped IPv6 address as IPv4) and URIs.
pub fn certificate_sans(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let Some(ext) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                out.push((*s).to_owned());
            }
            GeneralName::IPAddress(b) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                    out.push(std::net::Ipv4Addr::from(v4).to_string());
                } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                    let v6 = std::net::Ipv6Addr::from(v6);
                    out.push(match v6.to_ipv4_mapped() {
                        Some(v4) => v4.to_string(),
                        None => v6.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `client_allowed_sans` around another verifier: its verdict first, then one SAN must match.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = certificate_sans(end_entity).map_err(|e| {
            rustls::Error::General(format!("error parsing client certificate: {e}"))
        })?;
        if sans.iter().any(|s| self.allowed.contains(s)) {
            Ok(verified)
        } else {
            tracing::info!(
                ?sans,
                "client certificate refused: no SAN in client_allowed_sans"
            );
            Err(rustls::Error::General(
                "client certificate has no SAN in client_allowed_sans".to_owned(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
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
    let verifier: Arc<dyn ClientCertVerifier> = match &tls.client_allowed_sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: verifier,
            allowed: allowed.clone(),
        }),
        None => verifier,
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
    excluded_paths: Vec<String>,
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

/// sha256 over the config file's bytes (`config_bytes`: those already read, else read now) and
/// every file it names (a file that cannot be read hashes as its error).
fn fingerprint(config: &Path, config_bytes: Option<&[u8]>, files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut add = |p: &Path, bytes: Result<&[u8], &WebConfigError>| {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update([0]);
        match bytes {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(bytes);
            }
            Err(e) => h.update(format!("error: {e}").as_bytes()),
        }
        h.update([0]);
    };
    match config_bytes {
        Some(b) => add(config, Ok(b)),
        None => add(config, read_bounded(config).as_deref()),
    }
    for p in files {
        add(p, read_bounded(p).as_deref());
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
    if let Some(t) = &parsed.tls {
        for src in [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()]
            .into_iter()
            .flatten()
        {
            if let PemSource::File(p) = src {
                files.push(p.clone());
            }
        }
    }
    // Before the files are read for use: a change in between shows at the next poll.
    let fingerprint = fingerprint(path, Some(&text), &files);
    let tls = match &parsed.tls {
        Some(t) => Some(build_tls(t, path)?),
        None => None,
    };
    let users = Users {
        hashes: parsed.users,
        excluded_paths: parsed.auth_excluded_paths,
        decoy: OnceLock::new(),
    };
    // The decoy costs one bcrypt hash: paid here (startup, or the reload thread), not by the
    // first request for a user that does not exist.
    if !users.hashes.is_empty() {
        users.decoy();
    }
    Ok(Loaded {
        active: Arc::new(Active {
            tls,
            headers: parsed.headers,
        }),
        users: Arc::new(users),
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
        let now = fingerprint(path, None, &current.files);
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

    /// `basic_auth_excluded_paths`: `true` when a request for `path` (the URI path, exact
    /// match as in exporter-toolkit) needs no basic auth; call before [`Self::authorize`].
    pub fn auth_excluded(&self, path: &str) -> bool {
        self.loaded().users.excluded_paths.iter().any(|p| p == path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A CA, a server certificate for localhost/127.0.0.1 and two client certificates: one the
    /// CA signed, one self-signed ("rogue").
    struct Pki {
        ca: String,
        server_cert: String,
        server_key: String,
        client_cert: String,
        client_key: String,
        rogue_cert: String,
        rogue_key: String,
        /// Signed by the CA, with SANs DNS prometheus.monitoring.svc and IP 10.1.2.3.
        named_cert: String,
        named_key: String,
    }

    fn pki() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "webconfig test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");

        let server_key = KeyPair::generate().expect("server key");
        let mut sp = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        sp.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp.signed_by(&server_key, &ca).expect("server cert");

        let client_key = KeyPair::generate().expect("client key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("client params");
        cp.distinguished_name.push(DnType::CommonName, "prometheus");
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = cp.signed_by(&client_key, &ca).expect("client cert");

        let rogue_key = KeyPair::generate().expect("rogue key");
        let mut rp = CertificateParams::new(Vec::<String>::new()).expect("rogue params");
        rp.distinguished_name.push(DnType::CommonName, "rogue");
        rp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let rogue = rp.self_signed(&rogue_key).expect("rogue cert");

        let named_key = KeyPair::generate().expect("named key");
        let mut np = CertificateParams::new(vec!["prometheus.monitoring.svc".to_owned()])
            .expect("named params");
        np.subject_alt_names
            .push(SanType::IpAddress("10.1.2.3".parse().expect("ip")));
        np.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let named = np.signed_by(&named_key, &ca).expect("named cert");

        Pki {
            ca: ca.pem(),
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
            rogue_cert: rogue.pem(),
            rogue_key: rogue_key.serialize_pem(),
            named_cert: named.pem(),
            named_key: named_key.serialize_pem(),
        }
    }

    /// Writes the PKI into `dir` as server.crt, server.key and ca.pem.
    fn write_pki(dir: &Path, p: &Pki) {
        std::fs::write(dir.join("server.crt"), &p.server_cert).expect("write");
        std::fs::write(dir.join("server.key"), &p.server_key).expect("write");
        std::fs::write(dir.join("ca.pem"), &p.ca).expect("write");
    }

    /// Writes `text` as web.yml in `dir` (a new file renamed over the old, as a Secret update).
    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let tmp = dir.join(".web.yml.tmp");
        std::fs::write(&tmp, text).expect("write");
        let path = dir.join("web.yml");
        std::fs::rename(&tmp, &path).expect("rename");
        path
    }

    fn hash(password: &str) -> String {
        // Cost 4: the lowest bcrypt allows, so tests stay fast; the code is the same.
        bcrypt::hash(password, 4).expect("bcrypt")
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).expect("header"),
        );
        h
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        h
    }

    fn err(text: &str) -> String {
        match parse(text.as_bytes(), Path::new("/cfg")) {
            Ok(p) => panic!("{text:?} parsed: {p:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn parses_the_exporter_toolkit_examples() {
        // docs/web-config.yml
        let p = parse(
            br#"# TLS and basic authentication configuration example.
tls_server_config:
  cert_file: server.crt
  key_file: server.key

basic_auth_users:
  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
  bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m

basic_auth_excluded_paths:
- /-/healthy
- /-/ready
"#,
            Path::new("/etc/dpc"),
        )
        .expect("docs/web-config.yml");
        let tls = p.tls.expect("tls");
        assert_eq!(tls.cert, PemSource::File("/etc/dpc/server.crt".into()));
        assert_eq!(tls.key, PemSource::File("/etc/dpc/server.key".into()));
        assert_eq!(tls.client_auth, ClientAuth::NoClientCert);
        assert!(tls.tls12 && tls.tls13);
        assert!(tls.prefer_server_cipher_suites);
        assert_eq!(
            p.users.keys().collect::<Vec<_>>(),
            ["alice", "bob"].iter().collect::<Vec<_>>()
        );
        assert_eq!(p.auth_excluded_paths, ["/-/healthy", "/-/ready"]);
        assert!(p.http2);

        // web/testdata/web_config_headers.good.yml (note the integer X-XSS-Protection).
        let p = parse(
            br#"http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Content-Security-Policy: "default-src 'self' *.test.example.net"
"#,
            Path::new("/"),
        )
        .expect("headers example");
        assert!(p.tls.is_none());
        let headers: BTreeMap<String, String> = p
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        assert_eq!(headers.len(), 5);
        assert_eq!(headers["x-xss-protection"], "1");
        assert_eq!(headers["x-frame-options"], "deny");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'self' *.test.example.net"
        );

        // web/testdata/tls_config_noAuth_someCurves.good.yml: P-521 is not in rustls' ring
        // provider; warned about, the defaults stay.
        let p = parse(
            br#"tls_server_config :
  cert_file : "server.crt"
  key_file : "server.key"
  client_auth_type : "VerifyClientCertIfGiven"
  client_ca_file : "tls-ca-chain.pem"
  min_version: TLS13
  curve_preferences:
  - CurveP521
"#,
            Path::new("/d"),
        )
        .expect("someCurves example");
        let tls = p.tls.expect("tls");
        assert_eq!(tls.client_auth, ClientAuth::VerifyClientCertIfGiven);
        assert_eq!(
            tls.client_ca,
            Some(PemSource::File("/d/tls-ca-chain.pem".into()))
        );
        assert!(!tls.tls12 && tls.tls13);
        assert!(tls.kx_groups.is_none());
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);

        // Curves and ciphers that rustls has are mapped, in order.
        let p = parse(
            br#"tls_server_config:
  cert_file: a
  key_file: b
  max_version: TLS12
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]
  curve_preferences: [CurveP384, X25519]
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
"#,
            Path::new("/d"),
        )
        .expect("ciphers");
        let tls = p.tls.expect("tls");
        assert!(tls.tls12 && !tls.tls13);
        assert!(!tls.prefer_server_cipher_suites);
        let suites = tls.cipher_suites.expect("suites");
        assert!(
            suites
                .iter()
                .any(|s| format!("{:?}", s.suite()) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        );
        assert!(
            !suites
                .iter()
                .any(|s| format!("{:?}", s.suite()) == "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
        );
        let groups: Vec<_> = tls
            .kx_groups
            .expect("groups")
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::secp384r1, rustls::NamedGroup::X25519]
        );
        assert_eq!(p.warnings.len(), 1, "the CBC suite: {:?}", p.warnings);
        assert!(!p.http2);

        // Empty files and empty sections turn nothing on.
        for empty in [
            "",
            "# nothing\n",
            "tls_server_config:\n",
            "basic_auth_users: {}\n",
        ] {
            let p = parse(empty.as_bytes(), Path::new("/")).expect(empty);
            assert!(p.tls.is_none() && p.users.is_empty(), "{empty:?}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\n  cert_fil: c\n");
        assert!(e.contains("cert_fil"), "{e}");
        let e = err("basic_auth_user:\n  alice: x\n");
        assert!(e.contains("basic_auth_user"), "{e}");
        let e = err("http_server_config:\n  http3: true\n");
        assert!(e.contains("http3"), "{e}");
        let e = err("tls_server_config:\n  cert_file: a\n");
        assert!(e.contains("missing one of key or key_file"), "{e}");
        let e = err("tls_server_config:\n  key_file: a\n");
        assert!(e.contains("missing one of cert or cert_file"), "{e}");
        let e =
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n");
        assert!(e.contains("invalid ClientAuth \"Maybe\""), "{e}");
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n");
        assert!(e.contains("without a Client Auth Policy"), "{e}");
        let e = err(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
        );
        assert!(e.contains("needs client_ca_file"), "{e}");
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n");
        assert!(e.contains("TLS14"), "{e}");
        let e = err(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
        );
        assert!(e.contains("above max_version"), "{e}");
        let e =
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [P999]\n");
        assert!(e.contains("unknown curve"), "{e}");
        let e = err("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [FOO]\n");
        assert!(e.contains("unknown cipher"), "{e}");
        let e = err("tls_server_config:\n  cert: x\n  cert_file: a\n  key_file: b\n");
        assert!(e.contains("not both"), "{e}");
        let e = err(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: c\n  client_allowed_sans: [x]\n",
        );
        assert!(
            e.contains("client_allowed_sans requires client_auth_type"),
            "{e}"
        );
        let e = err("rate_limit:\n  interval: 1s\n  burst: 5\n");
        assert!(e.contains("--web.rate-limit"), "{e}");
        let e = err("http_server_config:\n  headers:\n    X-Powered-By: me\n");
        assert!(e.contains("can not be configured"), "{e}");
        let e = err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert!(e.contains("invalid value for X-Frame-Options"), "{e}");
        let e = err("basic_auth_users:\n  alice: plaintext\n");
        assert!(
            e.contains("not a bcrypt hash") && e.contains("alice"),
            "{e}"
        );
        let e = err("basic_auth_users:\n  alice: $2y$10$a\n  alice: $2y$10$b\n");
        assert!(e.contains("duplicate"), "{e}");
        let e = err("basic_auth_excluded_paths: [metrics]\n");
        assert!(e.contains("must start with /"), "{e}");
        let e = err("- a\n- b\n");
        assert!(!e.is_empty());

        let before = crate::limits::count("web_config_file_bytes");
        let huge = vec![b'#'; MAX_CONFIG_BYTES as usize + 1];
        let e = parse(&huge, Path::new("/")).expect_err("too large");
        assert!(e.0.contains("web_config_file_bytes"), "{e}");
        assert!(crate::limits::count("web_config_file_bytes") > before);
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let p = parse(
            b"tls_server_config:\n  cert_file: certs/s.crt\n  key_file: /abs/s.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ../ca.pem\n",
            Path::new("/etc/web"),
        )
        .expect("parse");
        let tls = p.tls.expect("tls");
        assert_eq!(tls.cert, PemSource::File("/etc/web/certs/s.crt".into()));
        assert_eq!(tls.key, PemSource::File("/abs/s.key".into()));
        assert_eq!(
            tls.client_ca,
            Some(PemSource::File("/etc/web/../ca.pem".into()))
        );

        // And load() reads them there, whatever the working directory.
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = pki();
        write_pki(dir.path(), &pki);
        let path = write_config(
            dir.path(),
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        );
        let w = WebConfigWatch::load(Some(&path)).expect("load");
        assert!(w.current().tls.is_some());

        // A missing file names itself.
        let path = write_config(
            dir.path(),
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
        );
        let e = WebConfigWatch::load(Some(&path))
            .err()
            .expect("missing file");
        assert!(e.to_string().contains("nope.crt"), "{e}");
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = pki();
        write_pki(dir.path(), &pki);
        std::fs::write(dir.path().join("empty.pem"), "not pem\n").expect("write");
        std::fs::write(dir.path().join("other.key"), &pki.client_key).expect("write");
        for (yaml, expect) in [
            (
                "tls_server_config:\n  cert_file: empty.pem\n  key_file: server.key\n",
                "no CERTIFICATE",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: empty.pem\n",
                "server key",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
                "do not go together",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: empty.pem\n",
                "client CA: no CERTIFICATE",
            ),
        ] {
            let path = write_config(dir.path(), yaml);
            let e = WebConfigWatch::load(Some(&path)).err().expect(yaml);
            assert!(e.to_string().contains(expect), "{yaml}: {e}");
        }
        // Inline PEM works like files.
        let inline = format!(
            "tls_server_config:\n  cert: |\n{}  key: |\n{}",
            indent(&pki.server_cert),
            indent(&pki.server_key)
        );
        let path = write_config(dir.path(), &inline);
        let w = WebConfigWatch::load(Some(&path)).expect("inline");
        assert!(w.current().tls.is_some());
    }

    fn indent(pem: &str) -> String {
        pem.lines().map(|l| format!("    {l}\n")).collect()
    }

    #[tokio::test]
    async fn basic_auth_right_wrong_missing_malformed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(
            dir.path(),
            &format!(
                "basic_auth_users:\n  alice: {}\n  bob: {}\nbasic_auth_excluded_paths: [/healthz]\n",
                hash("wonderland"),
                hash("builder")
            ),
        );
        let w = WebConfigWatch::load(Some(&path)).expect("load");
        assert_eq!(w.authorize(&basic("alice", "wonderland")).await, Ok(()));
        assert_eq!(w.authorize(&basic("bob", "builder")).await, Ok(()));
        let cached = w.inner.cache.lock().expect("cache").set.len();
        assert_eq!(cached, 2, "both verified pairs are remembered");
        // Again: from the cache, same answer, nothing added.
        assert_eq!(w.authorize(&basic("alice", "wonderland")).await, Ok(()));
        assert_eq!(w.inner.cache.lock().expect("cache").set.len(), 2);

        assert_eq!(
            w.authorize(&basic("alice", "builder")).await,
            Err(AuthError::Wrong)
        );
        assert_eq!(
            w.authorize(&basic("alice", "")).await,
            Err(AuthError::Wrong)
        );
        assert_eq!(
            w.authorize(&basic("mallory", "wonderland")).await,
            Err(AuthError::Wrong)
        );
        assert_eq!(w.authorize(&basic("", "")).await, Err(AuthError::Wrong));
        assert_eq!(
            w.inner.cache.lock().expect("cache").set.len(),
            2,
            "failures are never cached"
        );
        assert_eq!(
            w.authorize(&HeaderMap::new()).await,
            Err(AuthError::Missing)
        );
        for malformed in [
            "Bearer abc",
            "Basic",
            "Basic !!!not-base64!!!",
            // "alice" without a colon.
            "Basic YWxpY2U=",
        ] {
            assert_eq!(
                w.authorize(&with_authorization(malformed)).await,
                Err(AuthError::Missing),
                "{malformed}"
            );
        }
        // The scheme is case-insensitive.
        let token = base64::engine::general_purpose::STANDARD.encode("alice:wonderland");
        assert_eq!(
            w.authorize(&with_authorization(&format!("basic {token}")))
                .await,
            Ok(())
        );

        let before = crate::limits::count("http_authorization_bytes");
        let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_BYTES));
        assert_eq!(
            w.authorize(&with_authorization(&long)).await,
            Err(AuthError::Missing)
        );
        assert!(crate::limits::count("http_authorization_bytes") > before);

        assert!(w.auth_excluded("/healthz"));
        assert!(!w.auth_excluded("/metrics"));
        assert!(!w.auth_excluded("/healthz/"));

        // No users: everything is let through.
        let open = WebConfigWatch::load(None).expect("none");
        assert_eq!(open.authorize(&HeaderMap::new()).await, Ok(()));
        assert!(open.current().tls.is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = AuthCache::default();
        for i in 0..(AUTH_CACHE_ENTRIES as u8 + 10) {
            c.insert([i; 32]);
        }
        assert_eq!(c.set.len(), AUTH_CACHE_ENTRIES);
        assert_eq!(c.order.len(), AUTH_CACHE_ENTRIES);
        assert!(!c.set.contains(&[0; 32]), "oldest evicted first");
        assert!(c.set.contains(&[AUTH_CACHE_ENTRIES as u8 + 9; 32]));
    }

    #[tokio::test]
    async fn reload_picks_up_new_users_and_keeps_the_old_on_a_broken_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_config(
            dir.path(),
            &format!("basic_auth_users:\n  alice: {}\n", hash("one")),
        );
        let w = WebConfigWatch::load(Some(&path)).expect("load");
        assert_eq!(w.authorize(&basic("alice", "one")).await, Ok(()));
        assert!(!w.reload_if_changed().expect("unchanged"));

        write_config(
            dir.path(),
            &format!("basic_auth_users:\n  bob: {}\n", hash("two")),
        );
        assert!(w.reload_if_changed().expect("reload"));
        assert_eq!(w.authorize(&basic("bob", "two")).await, Ok(()));
        assert_eq!(
            w.authorize(&basic("alice", "one")).await,
            Err(AuthError::Wrong),
            "a removed user is refused, even though it was cached"
        );

        let failures = RELOAD_FAILURES.load(Ordering::Relaxed);
        write_config(dir.path(), "basic_auth_users:\n  carol: not-a-hash\n");
        let e = w.reload_if_changed().expect_err("broken");
        assert!(e.to_string().contains("carol"), "{e}");
        assert!(RELOAD_FAILURES.load(Ordering::Relaxed) > failures);
        assert_eq!(w.authorize(&basic("bob", "two")).await, Ok(()));
        // The same broken file is not tried (nor counted) again.
        assert!(!w.reload_if_changed().expect("same broken file"));

        write_config(dir.path(), "tls_server_config: [\n");
        w.reload_if_changed().expect_err("not YAML");
        assert_eq!(w.authorize(&basic("bob", "two")).await, Ok(()));

        let mut out = crate::exposition::Writer::new();
        encode(&mut out);
        let text = out.into_string();
        assert!(
            text.contains("dataplane_collector_web_config_reload_failures_total "),
            "{text}"
        );
        assert!(
            text.contains("dataplane_collector_web_config_last_reload_success_timestamp_seconds "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn reload_picks_up_a_new_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = pki();
        write_pki(dir.path(), &first);
        let path = write_config(
            dir.path(),
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        );
        let w = WebConfigWatch::load(Some(&path)).expect("load");
        let old = w.current();
        assert!(handshake(&w, &first.ca, None).await);

        // A new CA and server certificate, the config file untouched.
        let second = pki();
        write_pki(dir.path(), &second);
        assert!(w.reload_if_changed().expect("reload"));
        assert!(!Arc::ptr_eq(&old, &w.current()));
        assert!(handshake(&w, &second.ca, None).await);
        assert!(!handshake(&w, &first.ca, None).await);

        // A key that does not match keeps the working pair.
        std::fs::write(dir.path().join("server.key"), &first.client_key).expect("write");
        w.reload_if_changed().expect_err("mismatched key");
        assert!(handshake(&w, &second.ca, None).await);
    }

    /// One TLS connection to `w`'s acceptor; `true` when both ends completed it and the client
    /// read what the server wrote.
    async fn handshake(w: &WebConfigWatch, ca: &str, client: Option<(&str, &str)>) -> bool {
        handshake_with(
            w,
            ca,
            client,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        )
        .await
    }

    async fn handshake_with(
        w: &WebConfigWatch,
        ca: &str,
        client: Option<(&str, &str)>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> bool {
        let acceptor = w.current().tls.clone().expect("tls configured");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            match acceptor.accept(tcp).await {
                Ok(mut s) => {
                    let _ = s.write_all(b"ok").await;
                    let _ = s.shutdown().await;
                    true
                }
                Err(_) => false,
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.expect("ca pem")).expect("add root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .expect("client cert"),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("client key"),
                )
                .expect("client auth"),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let client_ok = match connector.connect(name, tcp).await {
            Ok(mut s) => {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                buf == b"ok"
            }
            Err(_) => false,
        };
        let server_ok = server.await.expect("server task");
        assert_eq!(client_ok, server_ok, "both ends agree");
        client_ok
    }

    #[tokio::test]
    async fn tls_handshakes_per_client_auth_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = pki();
        write_pki(dir.path(), &pki);
        let good = Some((pki.client_cert.as_str(), pki.client_key.as_str()));
        let rogue = Some((pki.rogue_cert.as_str(), pki.rogue_key.as_str()));
        // (client_auth_type, no cert, CA-signed cert, self-signed cert)
        let cases = [
            ("NoClientCert", true, true, true),
            ("RequestClientCert", true, true, true),
            ("RequireAnyClientCert", false, true, true),
            ("VerifyClientCertIfGiven", true, true, false),
            ("RequireAndVerifyClientCert", false, true, false),
        ];
        for (kind, none_ok, good_ok, rogue_ok) in cases {
            let ca = if kind == "NoClientCert" {
                String::new()
            } else {
                "  client_ca_file: ca.pem\n".to_owned()
            };
            let path = write_config(
                dir.path(),
                &format!(
                    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {kind}\n{ca}"
                ),
            );
            let w = WebConfigWatch::load(Some(&path)).expect(kind);
            assert_eq!(
                handshake(&w, &pki.ca, None).await,
                none_ok,
                "{kind}, no cert"
            );
            assert_eq!(
                handshake(&w, &pki.ca, good).await,
                good_ok,
                "{kind}, CA-signed cert"
            );
            assert_eq!(
                handshake(&w, &pki.ca, rogue).await,
                rogue_ok,
                "{kind}, self-signed cert"
            );
        }
        // client_allowed_sans: the CA-signed certificate without the SAN is refused.
        let named = Some((pki.named_cert.as_str(), pki.named_key.as_str()));
        for (kind, sans, named_ok) in [
            (
                "RequireAndVerifyClientCert",
                "[prometheus.monitoring.svc]",
                true,
            ),
            ("RequireAndVerifyClientCert", "['10.1.2.3']", true),
            (
                "RequireAnyClientCert",
                "[other.svc, prometheus.monitoring.svc]",
                true,
            ),
            ("RequireAndVerifyClientCert", "[monitoring.svc]", false),
            ("RequireAndVerifyClientCert", "[]", false),
        ] {
            let path = write_config(
                dir.path(),
                &format!(
                    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {kind}\n  client_ca_file: ca.pem\n  client_allowed_sans: {sans}\n"
                ),
            );
            let w = WebConfigWatch::load(Some(&path)).expect(sans);
            assert_eq!(
                handshake(&w, &pki.ca, named).await,
                named_ok,
                "{kind} {sans}"
            );
            assert!(!handshake(&w, &pki.ca, good).await, "{kind} {sans}: no SAN");
            assert!(
                !handshake(&w, &pki.ca, None).await,
                "{kind} {sans}: no cert"
            );
        }

        // A client that does not trust the server's CA fails.
        let path = write_config(
            dir.path(),
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        );
        let w = WebConfigWatch::load(Some(&path)).expect("plain tls");
        assert!(!handshake(&w, &pki.rogue_cert, None).await);
    }

    #[tokio::test]
    async fn tls_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = pki();
        write_pki(dir.path(), &pki);
        let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        for (min, max, v12, v13) in [
            ("TLS12", "TLS13", true, true),
            ("TLS13", "TLS13", false, true),
            ("TLS12", "TLS12", true, false),
            // TLS 1.0/1.1 do not exist in rustls: 1.2 and up.
            ("TLS10", "TLS13", true, true),
        ] {
            let path = write_config(
                dir.path(),
                &format!(
                    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: {min}\n  max_version: {max}\n"
                ),
            );
            let w = WebConfigWatch::load(Some(&path)).expect("load");
            assert_eq!(
                handshake_with(&w, &pki.ca, None, tls12).await,
                v12,
                "{min}-{max} with a TLS 1.2 client"
            );
            assert_eq!(
                handshake_with(&w, &pki.ca, None, tls13).await,
                v13,
                "{min}-{max} with a TLS 1.3 client"
            );
        }
    }

    #[test]
    fn certificate_sans_as_go_lists_them() {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["a.example".to_owned()]).expect("params");
        p.subject_alt_names.extend([
            SanType::Rfc822Name("ops@example.com".try_into().expect("email")),
            SanType::URI(
                "spiffe://cluster/ns/monitoring/sa/prometheus"
                    .try_into()
                    .expect("uri"),
            ),
            SanType::IpAddress("192.0.2.1".parse().expect("v4")),
            SanType::IpAddress("2001:db8::1".parse().expect("v6")),
            SanType::IpAddress("::ffff:192.0.2.2".parse().expect("mapped")),
        ]);
        let cert = p.self_signed(&key).expect("cert");
        assert_eq!(
            certificate_sans(cert.der()).expect("sans"),
            [
                "a.example",
                "ops@example.com",
                "spiffe://cluster/ns/monitoring/sa/prometheus",
                "192.0.2.1",
                "2001:db8::1",
                "192.0.2.2"
            ]
        );
        assert!(certificate_sans(b"not a certificate").is_err());
    }

    #[test]
    fn parse_never_panics_on_odd_input() {
        // A tiny deterministic fuzz: every prefix of a full config, and some byte flips.
        let full = "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: c\n  min_version: TLS12\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  a: $2y$04$abcdefghijklmnopqrstuu5Ksw6dmnCAsfaxvSjW3aU1ZBAY6nSqe\n";
        let bytes = full.as_bytes();
        for n in 0..=bytes.len() {
            let _ = parse(&bytes[..n], Path::new("/"));
        }
        for i in 0..bytes.len() {
            for flip in [b'\0', b':', b'[', b'{', b'&', b'*', b'!', 0xff] {
                let mut b = bytes.to_vec();
                b[i] = flip;
                let _ = parse(&b, Path::new("/"));
            }
        }
        let _ = parse(b"a: &a [*a, *a, *a]\n", Path::new("/"));
    }
}

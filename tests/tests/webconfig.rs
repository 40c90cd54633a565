//! `--web.config.file` end to end: the real daemon binary serving TLS with a client CA and basic
//! auth, checked with `curl` as Prometheus (or a person) would: the right client certificate
//! and password get 200, a wrong or missing password 401, a missing client certificate or an
//! untrusted server no HTTP at all; a changed file is picked up while the daemon runs.
//!
//! Needs `curl` only (no root, no Open vSwitch); under `DPC_REQUIRE_ROOT_TESTS=1` a missing
//! curl is a failure, otherwise a skip.

use anyhow::{Context, Result, bail};
use clap::Parser as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn curl_available() -> bool {
    let required = std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    let found = testbed::ovs::which("curl").is_some();
    assert!(
        found || !required,
        "curl is not installed (apt-get install curl)"
    );
    if !found {
        eprintln!("SKIPPED: curl not installed");
    }
    found
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// ca.pem, server.{crt,key} (localhost, 127.0.0.1), client.{crt,key} (signed by the CA)
    /// and rogue.{crt,key} (self-signed) in a new directory.
    fn new() -> Result<Pki> {
        let dir = tempfile::tempdir()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "webconfig e2e CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write("ca.pem", &ca.pem())?;

        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec!["localhost".to_owned()])?;
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse()?));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write("server.crt", &p.signed_by(&key, &ca)?.pem())?;
        write("server.key", &key.serialize_pem())?;

        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, "prometheus");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        write("client.crt", &p.signed_by(&key, &ca)?.pem())?;
        write("client.key", &key.serialize_pem())?;

        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec!["localhost".to_owned()])?;
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        write("rogue.crt", &p.self_signed(&key)?.pem())?;
        write("rogue.key", &key.serialize_pem())?;
        Ok(Pki { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes web.yml (new file renamed over the old, as a Secret update does).
    fn config(&self, users: &[(&str, &str)]) -> Result<PathBuf> {
        let mut text = String::from(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n",
        );
        for (user, password) in users {
            text.push_str(&format!("  {user}: {}\n", bcrypt::hash(password, 4)?));
        }
        let tmp = self.path(".web.yml.tmp");
        std::fs::write(&tmp, text)?;
        let path = self.path("web.yml");
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What one curl run saw: its exit code, the HTTP status (0: none), the response headers.
struct Seen {
    exit: i32,
    status: u16,
    headers: String,
    body: String,
}

fn curl(args: &[&str]) -> Result<Seen> {
    let headers = tempfile::NamedTempFile::new()?;
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg("-D")
        .arg(headers.path())
        .args(args)
        .output()
        .context("run curl")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Ok(Seen {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(headers.path()).unwrap_or_default(),
        body: body.to_owned(),
    })
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

#[test]
fn tls_client_certificates_and_basic_auth_with_curl() -> Result<()> {
    if !curl_available() {
        return Ok(());
    }
    let exe = testbed::daemon::binary()?;
    let pki = Pki::new()?;
    let config = pki.config(&[("prometheus", "scrape-me")])?;
    let port = free_port()?;
    let child = Command::new(&exe)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", config.display()))
        .args(["--web.rate-limit=0", "--no-collector.ebpf"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", exe.display()))?;
    let _daemon = Running(child);

    let url = format!("https://localhost:{port}/");
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.crt"),
        pki.path("client.key"),
    );
    let mtls = |extra: &[&str]| -> Result<Seen> {
        let mut a = vec![
            "--cacert",
            p(&ca),
            "--cert",
            p(&cert),
            "--key",
            p(&key),
            "--resolve",
        ];
        let resolve = format!("localhost:{port}:127.0.0.1");
        a.push(&resolve);
        a.extend_from_slice(extra);
        a.push(&url);
        curl(&a)
    };

    // Wait for the daemon to listen (a 401 is an answer).
    let start = Instant::now();
    loop {
        let seen = mtls(&[])?;
        if seen.status != 0 {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!(
                "the daemon did not answer in 30 s (curl exit {})",
                seen.exit
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let ok = mtls(&["-u", "prometheus:scrape-me"])?;
    assert_eq!(
        ok.status, 200,
        "right client cert and password: {}",
        ok.body
    );
    assert!(
        ok.headers
            .to_ascii_lowercase()
            .contains("x-frame-options: deny"),
        "configured headers are sent:\n{}",
        ok.headers
    );

    let wrong = mtls(&["-u", "prometheus:guess"])?;
    assert_eq!(wrong.status, 401, "wrong password");
    let unknown = mtls(&["-u", "alice:scrape-me"])?;
    assert_eq!(unknown.status, 401, "unknown user");
    let none = mtls(&[])?;
    assert_eq!(none.status, 401, "no credentials");
    assert!(
        none.headers
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "401 asks for basic auth:\n{}",
        none.headers
    );

    // No client certificate: the TLS handshake is refused, no HTTP status.
    let resolve = format!("localhost:{port}:127.0.0.1");
    let no_cert = curl(&[
        "--cacert",
        p(&ca),
        "--resolve",
        &resolve,
        "-u",
        "prometheus:scrape-me",
        &url,
    ])?;
    assert_eq!(no_cert.status, 0, "no client certificate must not get HTTP");
    assert_ne!(no_cert.exit, 0);

    // A client certificate the CA did not sign: refused too.
    let rogue = curl(&[
        "--cacert",
        p(&ca),
        "--cert",
        p(&pki.path("rogue.crt")),
        "--key",
        p(&pki.path("rogue.key")),
        "--resolve",
        &resolve,
        "-u",
        "prometheus:scrape-me",
        &url,
    ])?;
    assert_eq!(
        rogue.status, 0,
        "an unsigned client certificate must not get HTTP"
    );

    // A client that does not trust the server's certificate stops (curl exit 60).
    let untrusted = curl(&[
        "--cacert",
        p(&pki.path("rogue.crt")),
        "--cert",
        p(&cert),
        "--key",
        p(&key),
        "--resolve",
        &resolve,
        &url,
    ])?;
    assert_eq!(untrusted.status, 0);
    assert_eq!(
        untrusted.exit, 60,
        "curl: peer certificate cannot be authenticated"
    );

    // Plain HTTP on the TLS port gets no 200.
    let plain = curl(&[
        &format!("http://127.0.0.1:{port}/"),
        "-u",
        "prometheus:scrape-me",
    ])?;
    assert_ne!(plain.status, 200, "plain HTTP must not be served");

    // The scrape shows the web config metrics.
    let metrics_url = format!("https://localhost:{port}/metrics");
    let m = curl(&[
        "--cacert",
        p(&ca),
        "--cert",
        p(&cert),
        "--key",
        p(&key),
        "--resolve",
        &resolve,
        "-u",
        "prometheus:scrape-me",
        &metrics_url,
    ])?;
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("dataplane_collector_web_config_last_reload_success_timestamp_seconds "),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("dataplane_collector_web_config_reload_failures_total 0"),
        "{}",
        m.body
    );

    // A new users list is picked up while the daemon runs; the old password stops working.
    pki.config(&[("grafana", "new-secret")])?;
    let start = Instant::now();
    loop {
        if mtls(&["-u", "grafana:new-secret"])?.status == 200 {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the new users list was not picked up in 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(mtls(&["-u", "prometheus:scrape-me"])?.status, 401);

    // A broken file keeps the last good configuration, and is counted.
    std::fs::write(
        pki.path("web.yml"),
        "basic_auth_users:\n  grafana: plaintext\n",
    )?;
    let start = Instant::now();
    loop {
        let m = mtls(&["-u", "grafana:new-secret"])?;
        assert_eq!(m.status, 200, "the old configuration stays in force");
        let metrics = curl(&[
            "--cacert",
            p(&ca),
            "--cert",
            p(&cert),
            "--key",
            p(&key),
            "--resolve",
            &resolve,
            "-u",
            "grafana:new-secret",
            &metrics_url,
        ])?;
        if metrics
            .body
            .contains("dataplane_collector_web_config_reload_failures_total 1")
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the broken file was not counted in 30 s:\n{}", metrics.body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/web-config")
}

/// deploy/web-config/: the example web config loads (its hash is the documented password),
/// and the DaemonSet variant mounts it where its --web.config.file points, listens on the
/// downward-API host address and passes `kubernetes-validate --strict`.
#[test]
fn deploy_web_config_example_is_consistent() -> Result<()> {
    let text = std::fs::read(deploy().join("web-config.yml"))?;
    let parsed =
        dataplane_collector::webconfig::parse(&text, Path::new("/etc/dataplane-collector/web"))
            .map_err(|e| anyhow::anyhow!("deploy/web-config/web-config.yml: {e}"))?;
    let hash = parsed.users.get("prometheus").context("user prometheus")?;
    assert!(
        bcrypt::verify("change-me", hash)?,
        "the example hash is not \"change-me\"; one that is: {}",
        bcrypt::hash("change-me", 10)?
    );
    assert!(parsed.tls.is_some());
    assert_eq!(parsed.auth_excluded_paths, ["/healthz"]);

    let ds_text = std::fs::read_to_string(deploy().join("daemonset.yaml"))?;
    // The args as the kubelet passes them: $(HOST_IP) expanded.
    let args: Vec<String> = ds_text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- --"))
        .map(|a| format!("--{}", a.replace("$(HOST_IP)", "192.0.2.10")))
        .collect();
    assert!(
        args.iter()
            .any(|a| a == "--web.listen-address=192.0.2.10:9477"),
        "{args:?}"
    );
    let mut argv = vec!["dataplane-collector".to_owned()];
    argv.extend(args);
    let serve = dataplane_collector::cli::Cli::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("the DaemonSet's args do not parse: {e}"))?
        .serve_args();
    dataplane_collector::cli::listen_addr(&serve.listen_address).map_err(anyhow::Error::msg)?;
    let file = serve.web_config_file.context("--web.config.file")?;
    assert_eq!(
        file,
        Path::new("/etc/dataplane-collector/web/web-config.yml")
    );
    assert!(ds_text.contains("mountPath: /etc/dataplane-collector/web"));
    assert!(ds_text.contains("secretName: dataplane-collector-web-config"));
    assert!(ds_text.contains("fieldPath: status.hostIP"));

    if let Some(kv) = testbed::ovs::which("kubernetes-validate") {
        let out = Command::new(kv)
            .arg("--strict")
            .arg(deploy().join("daemonset.yaml"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("passed") && !text.contains("failed"),
            "{text}"
        );
    } else {
        let required = std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
        assert!(!required, "kubernetes-validate is not installed");
        eprintln!("SKIPPED: kubernetes-validate (the YAML checks above ran)");
    }
    Ok(())
}

//! The monitoring mixin (`mixin/`) and the Prometheus Operator manifests (`deploy/monitoring/`):
//! - the committed generated files are what jsonnet makes of the mixin now;
//! - promtool accepts the alerts and rules, and each alert's unit test (firing and not firing)
//!   passes; every alert has a runbook section;
//! - every metric the alerts, rules and dashboards use is one the collector serves (the golden
//!   /metrics of every collector);
//! - the ServiceMonitor, PodMonitor and PrometheusRule pass the Prometheus Operator's CRD
//!   schemas (deploy/crds/), match the Service and DaemonSet, and `kubectl kustomize deploy/`
//!   builds;
//! - root: a real Prometheus scraping the daemon on a real Open vSwitch evaluates every
//!   recording rule without error and every dashboard query returns data, except the panels
//!   of subsystems this host does not have (listed in [`MAY_BE_EMPTY`], with why).

use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testbed::daemon::Daemon;
use testbed::ovs::Ovs;
use testbed::topology::Topology;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

fn mixin() -> PathBuf {
    root().join("mixin")
}

fn required() -> bool {
    std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1")
}

/// `name` on PATH; `None` (the test skips) when missing and not required.
fn tool(name: &str) -> Option<PathBuf> {
    let found = testbed::ovs::which(name);
    assert!(
        found.is_some() || !required(),
        "{name} is not installed (.ci/run installs it)"
    );
    if found.is_none() {
        eprintln!("SKIPPED: {name} not installed");
    }
    found
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| p.display().to_string())
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(dir)?.to_path_buf());
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The generated rule files, read without a YAML parser: jsonnet's std.manifestYamlDoc writes
// every string as a JSON string, one `key: value` per line.

#[derive(Debug, Clone)]
struct Rule {
    /// The alert's or the recorded series' name.
    name: String,
    alert: bool,
    expr: String,
    runbook_url: Option<String>,
}

fn json_str(v: &str) -> Result<String> {
    serde_json::from_str::<String>(v.trim()).with_context(|| format!("not a JSON string: {v}"))
}

fn rules_in(path: &Path) -> Result<Vec<Rule>> {
    // groups[].rules[] items start at this indentation (indent_array_in_object); their keys
    // are sorted, so `expr` may come before `record`.
    const ITEM: &str = "      - ";
    let mut rules: Vec<Rule> = Vec::new();
    for line in read(path)?.lines() {
        if line.starts_with(ITEM) {
            rules.push(Rule {
                name: String::new(),
                alert: false,
                expr: String::new(),
                runbook_url: None,
            });
        }
        let l = line.trim_start().trim_start_matches("- ");
        let Some(r) = rules.last_mut() else {
            continue;
        };
        if let Some(v) = l.strip_prefix("alert: ") {
            r.name = json_str(v)?;
            r.alert = true;
        } else if let Some(v) = l.strip_prefix("record: ") {
            r.name = json_str(v)?;
        } else if let Some(v) = l.strip_prefix("expr: ") {
            r.expr = json_str(v)?;
        } else if let Some(v) = l.strip_prefix("runbook_url: ") {
            r.runbook_url = Some(json_str(v)?);
        }
    }
    for r in &rules {
        assert!(
            !r.expr.is_empty() && !r.name.is_empty(),
            "{r:?} in {}",
            path.display()
        );
    }
    Ok(rules)
}

fn alerts() -> Result<Vec<Rule>> {
    let v = rules_in(&mixin().join("generated/prometheus_alerts.yaml"))?;
    assert!(v.iter().all(|r| r.alert) && v.len() >= 8, "{v:?}");
    Ok(v)
}

fn recording_rules() -> Result<Vec<Rule>> {
    let v = rules_in(&mixin().join("generated/prometheus_rules.yaml"))?;
    assert!(v.iter().all(|r| !r.alert) && v.len() >= 5, "{v:?}");
    Ok(v)
}

/// A dashboard query: the dashboard, the panel's title, the expression (variables unsubstituted).
#[derive(Debug, Clone)]
struct Query {
    dashboard: String,
    panel: String,
    expr: String,
}

fn dashboards() -> Result<BTreeMap<String, serde_json::Value>> {
    let dir = mixin().join("generated/dashboards");
    let mut out = BTreeMap::new();
    for f in files_under(&dir)? {
        let v: serde_json::Value =
            serde_json::from_str(&read(&dir.join(&f))?).with_context(|| f.display().to_string())?;
        out.insert(f.display().to_string(), v);
    }
    assert!(out.len() >= 5, "{:?}", out.keys());
    Ok(out)
}

/// Every panel target's expression, and every template variable's query (the selector inside
/// `label_values(SELECTOR, LABEL)`).
fn dashboard_queries() -> Result<(Vec<Query>, Vec<Query>)> {
    let mut panels = Vec::new();
    let mut vars = Vec::new();
    for (name, d) in dashboards()? {
        for p in d["panels"].as_array().context("panels")? {
            let targets = p["targets"].as_array().context("targets")?;
            assert!(!targets.is_empty(), "{name}: {p}");
            for t in targets {
                panels.push(Query {
                    dashboard: name.clone(),
                    panel: p["title"].as_str().unwrap_or("?").to_owned(),
                    expr: t["expr"].as_str().context("expr")?.to_owned(),
                });
            }
        }
        for v in d["templating"]["list"].as_array().context("templating")? {
            if v["type"] != "query" {
                continue;
            }
            let q = v["query"]["query"].as_str().context("variable query")?;
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .and_then(|q| q.rsplit_once(','))
                .with_context(|| format!("{name}: not label_values(SELECTOR, LABEL): {q}"))?;
            vars.push(Query {
                dashboard: name.clone(),
                panel: format!("variable {}", v["name"]),
                expr: inner.0.to_owned(),
            });
        }
    }
    Ok((panels, vars))
}

// ---------------------------------------------------------------------------------------------
// Metric names in PromQL: a small tokenizer (strings, label matchers, ranges and the label lists
// of by/without/on/ignoring/group_left/group_right skipped; function and aggregation names are
// followed by '(' or are keywords).

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "inf",
    "nan",
];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn metric_names(expr: &str) -> Vec<String> {
    let c: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_string = |i: &mut usize| {
        let q = c[*i];
        *i += 1;
        while *i < c.len() && c[*i] != q {
            if c[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    let skip_to = |i: &mut usize, end: char| {
        while *i < c.len() && c[*i] != end {
            if matches!(c[*i], '"' | '\'' | '`') {
                skip_string(i);
            } else {
                *i += 1;
            }
        }
        *i += 1;
    };
    let ident = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    while i < c.len() {
        let ch = c[i];
        if matches!(ch, '"' | '\'' | '`') {
            skip_string(&mut i);
        } else if ch == '{' {
            skip_to(&mut i, '}');
        } else if ch == '[' {
            skip_to(&mut i, ']');
        } else if ch.is_ascii_digit() || ch == '$' {
            // Numbers, durations, variables.
            i += 1;
            while i < c.len() && (ident(c[i]) || c[i] == '.') {
                i += 1;
            }
        } else if ident(ch) {
            let start = i;
            while i < c.len() && ident(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let call = j < c.len() && c[j] == '(';
            if LABEL_LISTS.contains(&word.as_str()) {
                if call {
                    i = j;
                    skip_to(&mut i, ')');
                }
            } else if !call && !KEYWORDS.contains(&word.as_str()) {
                out.push(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Every metric name in collector/tests/golden/metrics.txt (the golden /metrics of every
/// collector on fixtures).
fn golden_names() -> Result<BTreeSet<String>> {
    let text = read(&root().join("collector/tests/golden/metrics.txt"))?;
    let names: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 150, "{}", names.len());
    Ok(names)
}

/// Names used that are not in the golden /metrics, with the document that defines each:
/// `up` is Prometheus's own; the limit counter only appears once a bound is exceeded, which no
/// fixture does.
const NOT_IN_GOLDEN: &[(&str, &str)] = &[
    ("up", ""),
    ("dataplane_collector_limit_exceeded_total", "docs/limits.md"),
];

/// The names in `exprs` that are neither served (golden), nor recorded by a rule, nor listed in
/// NOT_IN_GOLDEN.
fn unknown_names<'a>(
    exprs: impl IntoIterator<Item = (String, &'a str)>,
    golden: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (what, expr) in exprs {
        for name in metric_names(expr) {
            let known = golden.contains(&name)
                || recorded.contains(&name)
                || NOT_IN_GOLDEN.iter().any(|(n, _)| *n == name);
            if !known {
                bad.push(format!("{what}: {name} (in {expr})"));
            }
        }
    }
    bad
}

#[test]
fn the_metric_name_check_finds_names_and_typos() -> Result<()> {
    assert_eq!(
        metric_names(
            r#"sum by (node, pod) (rate(ovs_port_rx_bytes_total{job="x", pod!="a{b}"}[5m])) / on (node) group_left (pod) max without (x) (conntrack_max_entries offset 5m) > 0.9 and up == bool 1 or vector(0) * $__rate_interval"#
        ),
        ["ovs_port_rx_bytes_total", "conntrack_max_entries", "up"]
    );
    assert_eq!(
        metric_names("datapath:ovs_datapath_lookups:rate5m{result=\"hit\"} / 1e3"),
        ["datapath:ovs_datapath_lookups:rate5m"]
    );
    let golden = golden_names()?;
    let recorded = BTreeSet::new();
    let ok = "rate(ovs_datapath_lookups_total{result=\"lost\"}[5m]) > 0".to_owned();
    assert!(unknown_names([("ok".to_owned(), ok.as_str())], &golden, &recorded).is_empty());
    // One letter off: reported.
    let typo = "rate(ovs_datapath_lookup_total{result=\"lost\"}[5m]) > 0".to_owned();
    let bad = unknown_names([("typo".to_owned(), typo.as_str())], &golden, &recorded);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("ovs_datapath_lookup_total"), "{bad:?}");
    Ok(())
}

#[test]
fn every_metric_used_is_one_the_collector_serves() -> Result<()> {
    let golden = golden_names()?;
    for (name, doc) in NOT_IN_GOLDEN {
        assert!(!golden.contains(*name), "{name} is in the golden file now");
        if !doc.is_empty() {
            assert!(
                read(&root().join(doc))?.contains(name),
                "{name} not in {doc}"
            );
        }
    }
    let rules = recording_rules()?;
    let recorded: BTreeSet<String> = rules.iter().map(|r| r.name.clone()).collect();
    let (panels, vars) = dashboard_queries()?;
    let alerts = alerts()?;
    let mut exprs: Vec<(String, &str)> = Vec::new();
    for r in rules.iter().chain(&alerts) {
        exprs.push((r.name.clone(), &r.expr));
    }
    for q in panels.iter().chain(&vars) {
        exprs.push((format!("{} / {}", q.dashboard, q.panel), &q.expr));
    }
    let used: usize = exprs.iter().map(|(_, e)| metric_names(e).len()).sum();
    assert!(used > 50, "{used} names found: the tokenizer is broken");
    let bad = unknown_names(exprs, &golden, &recorded);
    assert!(
        bad.is_empty(),
        "metrics the collector does not serve:\n{}",
        bad.join("\n")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_generated_files_are_what_jsonnet_makes_now() -> Result<()> {
    let Some(jsonnet) = tool("jsonnet") else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    // jsonnet -m makes no directories.
    std::fs::create_dir(tmp.path().join("dashboards"))?;
    run(Command::new(&jsonnet)
        .current_dir(mixin())
        .args(["-S", "-m"])
        .arg(tmp.path())
        .arg("generated.jsonnet"))?;
    let want = files_under(tmp.path())?;
    let have = files_under(&mixin().join("generated"))?;
    assert_eq!(
        have, want,
        "mixin/generated/ has other files than jsonnet makes: run mixin/generate.sh"
    );
    for f in &want {
        assert!(
            read(&tmp.path().join(f))? == read(&mixin().join("generated").join(f))?,
            "mixin/generated/{} is not what jsonnet makes now: run mixin/generate.sh",
            f.display()
        );
    }
    let rule = run(Command::new(&jsonnet)
        .current_dir(mixin())
        .args(["-S", "prometheusrule.jsonnet"]))?;
    assert!(
        rule == read(&root().join("deploy/monitoring/prometheusrule.yaml"))?,
        "deploy/monitoring/prometheusrule.yaml is not what jsonnet makes now: run mixin/generate.sh"
    );
    Ok(())
}

#[test]
fn promtool_checks_the_rules() -> Result<()> {
    let dir = mixin().join("generated");
    let alerts_file = dir.join("prometheus_alerts.yaml");
    let rules_file = dir.join("prometheus_rules.yaml");
    let Some(r) = testbed::promtool::run(
        &[
            "check",
            "rules",
            &alerts_file.to_string_lossy(),
            &rules_file.to_string_lossy(),
        ],
        None,
    )
    .map_err(anyhow::Error::msg)?
    else {
        return Ok(());
    };
    assert!(r.success, "{}", r.output);
    let n_alerts = alerts()?.len();
    let n_rules = recording_rules()?.len();
    assert!(
        r.output
            .contains(&format!("SUCCESS: {n_alerts} rules found"))
            && r.output
                .contains(&format!("SUCCESS: {n_rules} rules found")),
        "{}",
        r.output
    );
    Ok(())
}

#[test]
fn every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> Result<()> {
    let dir = mixin().join("tests");
    let alerts = alerts()?;
    let names: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    let mut files: Vec<PathBuf> = files_under(&dir)?.into_iter().collect();
    files.sort();
    for f in &files {
        let text = read(&dir.join(f))?;
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if stem == "recording_rules" {
            assert!(text.contains("promql_expr_test"), "{}", f.display());
            continue;
        }
        assert!(names.contains(stem), "{}: no alert {stem}", f.display());
        for line in text.lines() {
            if let Some(n) = line.trim().strip_prefix("alertname: ") {
                assert_eq!(n, stem, "{}", f.display());
            }
        }
        assert!(
            text.contains("exp_alerts: []"),
            "{}: no case where it does not fire",
            f.display()
        );
        assert!(
            text.contains("exp_labels:"),
            "{}: no case where it fires",
            f.display()
        );
    }
    for a in &names {
        assert!(
            dir.join(format!("{a}.yaml")).is_file(),
            "no mixin/tests/{a}.yaml"
        );
    }
    for f in &files {
        let path = dir.join(f);
        let Some(r) = testbed::promtool::run(&["test", "rules", &path.to_string_lossy()], None)
            .map_err(anyhow::Error::msg)?
        else {
            return Ok(());
        };
        assert!(
            r.success && r.output.contains("SUCCESS"),
            "{}:\n{}",
            f.display(),
            r.output
        );
    }
    Ok(())
}

#[test]
fn every_alert_links_to_its_runbook_section() -> Result<()> {
    let runbook = read(&mixin().join("runbook.md"))?;
    let headings: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for a in alerts()? {
        let url = a
            .runbook_url
            .clone()
            .with_context(|| format!("{}: no runbook_url", a.name))?;
        let anchor = a.name.to_ascii_lowercase();
        assert!(
            url.ends_with(&format!("/mixin/runbook.md#{anchor}")),
            "{}: {url}",
            a.name
        );
        assert!(
            headings.contains(&anchor),
            "runbook.md has no '## {}'",
            a.name
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// deploy/monitoring against the Prometheus Operator's CRDs.

/// Validates each YAML document of the files given against the matching CRD's openAPIV3Schema
/// (deploy/crds/), unknown fields rejected (the API server's strict field validation: every
/// object schema with `properties` and no `additionalProperties` or
/// `x-kubernetes-preserve-unknown-fields` allows no others). Prints one JSON list of the
/// documents; exits 1 with the errors.
const VALIDATE: &str = r#"
import json, sys, glob, yaml, jsonschema
crds = {}
for f in glob.glob(sys.argv[1] + "/*.yaml"):
    for d in yaml.safe_load_all(open(f)):
        if d and d.get("kind") == "CustomResourceDefinition":
            s = d["spec"]
            for v in s["versions"]:
                crds[(s["group"] + "/" + v["name"], s["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
def strict(s):
    if isinstance(s, dict):
        s = {k: strict(v) for k, v in s.items()}
        if s.get("x-kubernetes-int-or-string"):
            s.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
        return s
    if isinstance(s, list):
        return [strict(v) for v in s]
    return s
errors, docs = [], []
for f in sys.argv[2:]:
    for d in yaml.safe_load_all(open(f)):
        if not d:
            continue
        docs.append(d)
        key = (d.get("apiVersion"), d.get("kind"))
        if key not in crds:
            errors.append("%s: no CRD for %s" % (f, key)); continue
        schema = strict(crds[key])
        schema["properties"]["metadata"] = {"type": "object"}
        for e in jsonschema.Draft7Validator(schema).iter_errors(d):
            errors.append("%s: %s: %s" % (f, "/".join(map(str, e.absolute_path)), e.message))
print(json.dumps(docs))
if errors:
    sys.exit("\n".join(errors))
print("crds: %d" % len(crds), file=sys.stderr)
"#;

fn validate(files: &[PathBuf]) -> Result<Vec<serde_json::Value>> {
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(VALIDATE)
        .arg(root().join("deploy/crds"))
        .args(files))?;
    Ok(serde_json::from_str(out.trim())?)
}

fn python_with_yaml() -> bool {
    if tool("python3").is_none() {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import yaml, jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || !required(),
        "python3 has no yaml/jsonschema (the tests' venv: kubernetes-validate)"
    );
    ok
}

fn yaml_docs(path: &Path) -> Result<Vec<serde_json::Value>> {
    let out = run(Command::new("python3").args([
        "-c",
        "import json,sys,yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        &path.to_string_lossy(),
    ]))?;
    Ok(serde_json::from_str(out.trim())?)
}

#[test]
fn the_monitoring_manifests_pass_the_operators_crd_schemas() -> Result<()> {
    if !python_with_yaml() {
        return Ok(());
    }
    let dir = root().join("deploy/monitoring");
    let files: Vec<PathBuf> = files_under(&dir)?
        .into_iter()
        .map(|f| dir.join(f))
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let docs = validate(&files)?;
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["PodMonitor", "PrometheusRule", "ServiceMonitor"])
    );
    // The check rejects what the API server would: an unknown field, a wrong type.
    let tmp = tempfile::tempdir()?;
    let sm = read(&dir.join("servicemonitor.yaml"))?;
    for (what, bad) in [
        (
            "unknown field",
            sm.replace("    - port: metrics", "    - prot: metrics"),
        ),
        ("wrong type", sm.replace("interval: 30s", "interval: [30s]")),
        (
            "bad enum",
            sm.replace("action: labeldrop", "action: dropitlikeitshot"),
        ),
    ] {
        assert_ne!(bad, sm, "{what}: the replacement did not apply");
        let f = tmp.path().join("bad.yaml");
        std::fs::write(&f, bad)?;
        let err = validate(&[f])
            .err()
            .with_context(|| format!("{what} passed"))?;
        assert!(
            err.to_string().contains("bad.yaml: spec/endpoints/0"),
            "{what}: {err}"
        );
    }
    Ok(())
}

#[test]
fn the_monitors_match_the_service_and_the_daemonset() -> Result<()> {
    if !python_with_yaml() {
        return Ok(());
    }
    let deploy = root().join("deploy");
    let svc = &yaml_docs(&deploy.join("service.yaml"))?[0];
    let ds = &yaml_docs(&deploy.join("daemonset.yaml"))?[0];
    let sm = &yaml_docs(&deploy.join("monitoring/servicemonitor.yaml"))?[0];
    let pm = &yaml_docs(&deploy.join("monitoring/podmonitor.yaml"))?[0];
    let contains = |labels: &serde_json::Value, sel: &serde_json::Value| {
        sel.as_object()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
    };
    let ns = &svc["metadata"]["namespace"];
    for m in [sm, pm] {
        assert_eq!(m["spec"]["namespaceSelector"]["matchNames"][0], *ns, "{m}");
        // job="dataplane-collector", what the mixin selects.
        assert_eq!(m["spec"]["jobLabel"], "app.kubernetes.io/name");
    }
    assert!(contains(
        &svc["metadata"]["labels"],
        &sm["spec"]["selector"]["matchLabels"]
    ));
    assert_eq!(
        svc["metadata"]["labels"]["app.kubernetes.io/name"],
        "dataplane-collector"
    );
    let svc_ports: Vec<&serde_json::Value> = svc["spec"]["ports"]
        .as_array()
        .context("ports")?
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(
        svc_ports.contains(&&sm["spec"]["endpoints"][0]["port"]),
        "{svc_ports:?}"
    );
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert!(contains(pod_labels, &pm["spec"]["selector"]["matchLabels"]));
    let container_ports: Vec<&serde_json::Value> = ds["spec"]["template"]["spec"]["containers"][0]
        ["ports"]
        .as_array()
        .context("container ports")?
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(
        container_ports.contains(&&pm["spec"]["podMetricsEndpoints"][0]["port"]),
        "{container_ports:?}"
    );
    Ok(())
}

#[test]
fn kustomize_builds_the_deployment() -> Result<()> {
    let deploy = root().join("deploy");
    let k = read(&deploy.join("kustomization.yml"))?;
    let resources: Vec<&str> = k
        .lines()
        .skip_while(|l| !l.starts_with("resources:"))
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .collect();
    assert!(resources.len() >= 6, "{resources:?}");
    for r in &resources {
        assert!(deploy.join(r).is_file(), "kustomization.yml: no {r}");
    }
    for m in [
        "daemonset.yaml",
        "service.yaml",
        "monitoring/servicemonitor.yaml",
        "monitoring/prometheusrule.yaml",
    ] {
        assert!(resources.contains(&m), "kustomization.yml lacks {m}");
    }
    let Some(kubectl) = tool("kubectl") else {
        return Ok(());
    };
    let out = run(Command::new(kubectl).arg("kustomize").arg(&deploy))?;
    let kinds: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in [
        "Namespace",
        "DaemonSet",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(kind), "kubectl kustomize: no {kind}:\n{out}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus with the mixin's rules, scraping the daemon on a real Open vSwitch.

/// Dashboard panels and recording rules that may have no data on this test's host, and why.
/// Everything else must return data.
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    // Daemon::start runs with --no-collector.ebpf (the eBPF programs are tests/tests/ebpf.rs').
    ("ebpf_", "the eBPF collector is off in this test"),
    (
        "dataplane_collector_ebpf_map_full_total",
        "the eBPF collector is off in this test",
    ),
    ("ipvs_", "no IPVS virtual services on a plain OVS host"),
    ("sriov_", "no SR-IOV NICs on this host"),
    (
        "dataplane_collector_limit_exceeded_total",
        "no bound is exceeded: the counter appears when one is",
    ),
    (
        "conntrack_",
        "the kernel's conntrack source needs nf_conntrack loaded, which a userspace-datapath OVS does not load (other tests or the host may have)",
    ),
    (
        "event=~\"upcall_flow_limit_hit|netlink_overflow\"",
        "ovs-vswitchd lists coverage events once they happened; these did not",
    ),
];

/// Why `expr` may have no data: a MAY_BE_EMPTY needle in it, not preceded by a letter, digit
/// or '_' (so `conntrack_` is the kernel's `conntrack_entries`, not `ovs_conntrack_connections`).
fn may_be_empty(expr: &str) -> Option<&'static str> {
    MAY_BE_EMPTY
        .iter()
        .find(|(needle, _)| {
            expr.match_indices(needle).any(|(at, _)| {
                !expr[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(|(_, why)| *why)
}

#[test]
fn may_be_empty_matches_whole_names() {
    assert!(may_be_empty("conntrack_entries{x=\"\"} / conntrack_max_entries").is_some());
    assert!(may_be_empty("instance:conntrack_entries:ratio").is_some());
    assert!(may_be_empty("ovs_conntrack_connections / ovs_conntrack_max_connections").is_none());
    assert!(may_be_empty("rate(ovs_port_rx_bytes_total[1m])").is_none());
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<serde_json::Value> {
        let mut req = ureq::get(&format!("{}{path}", self.url));
        for (k, v) in query {
            req = req.query(k, v);
        }
        let r = req.call().map_err(|e| anyhow!("{path} {query:?}: {e}"))?;
        let v: serde_json::Value = serde_json::from_reader(r.into_reader())?;
        if v["status"] != "success" {
            bail!("{path} {query:?}: {v}");
        }
        Ok(v["data"].clone())
    }

    fn query(&self, q: &str) -> Result<Vec<serde_json::Value>> {
        self.api("/api/v1/query", &[("query", q)])
            .map(|d| d["result"].as_array().cloned().unwrap_or_default())
    }
}

/// Debian's Prometheus scraping `target` every second with the mixin's rules, evaluated every
/// second (tests/src/prometheus.rs' setup, plus rule_files).
fn start_prometheus(bin: &Path, dir: &Path, target: &str) -> Result<Prometheus> {
    let generated = mixin().join("generated");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n  - {}\n\
             scrape_configs:\n  - job_name: dataplane-collector\n    \
             static_configs:\n      - targets: ['{target}']\n        labels: {{node: testnode}}\n",
            generated.join("prometheus_rules.yaml").display(),
            generated.join("prometheus_alerts.yaml").display(),
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log"))?)
        .spawn()
        .context("start prometheus")?;
    let p = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..300 {
        if testbed::daemon::get(&format!("{}/-/ready", p.url)).is_ok_and(|(s, _)| s == 200) {
            return Ok(p);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "prometheus did not get ready: {}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    )
}

/// The dashboards' variables as "All" (Grafana's allValue `.*`), and $__rate_interval.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$node", ".*")
        .replace("$namespace", ".*")
        .replace("$pod", ".*")
}

#[test]
fn prometheus_evaluates_every_rule_and_dashboard_query_against_the_daemon() -> Result<()> {
    if !testbed::require_root_env() {
        return Ok(());
    }
    let Some(prometheus) = tool("prometheus") else {
        return Ok(());
    };
    let topo = Topology::build(Ovs::start()?, 3)?;
    // Pods as Kube-OVN names them (docs/pods.md), so the per-pod panels have series.
    for (i, pod) in topo.pods.iter().enumerate() {
        topo.ovs.vsctl(&[
            "set",
            "Interface",
            &pod.host_if,
            &format!("external_ids:pod_name=pod{i}"),
            "external_ids:pod_namespace=mixin",
        ])?;
    }
    let rundir = topo.ovs.rundir().to_string_lossy().into_owned();
    let daemon = Daemon::start(&["--ovs.rundir".to_owned(), rundir])?;
    let dir = tempfile::tempdir()?;
    let prom = start_prometheus(&prometheus, dir.path(), &daemon.addr.to_string())?;
    topo.traffic(3)?;
    topo.settle()?;
    // Enough scrapes for rates, and every recording rule evaluated since.
    let mut scrapes = 0.0;
    for _ in 0..120 {
        scrapes = prom
            .query("count_over_time(dataplane_collector_build_info[1m])")?
            .first()
            .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        if scrapes >= 8.0 {
            break;
        }
        topo.traffic(1)?;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(scrapes >= 8.0, "only {scrapes} scrapes");

    // Every rule loaded, evaluated, without error.
    let groups = prom.api("/api/v1/rules", &[])?;
    let mut evaluated = BTreeMap::new();
    for g in groups["groups"].as_array().context("groups")? {
        for r in g["rules"].as_array().context("rules")? {
            assert_eq!(r["health"], "ok", "{r}");
            evaluated.insert(r["name"].as_str().unwrap_or("?").to_owned(), r.clone());
        }
    }
    let rules = recording_rules()?;
    let alerts = alerts()?;
    assert_eq!(evaluated.len(), rules.len() + alerts.len(), "{evaluated:?}");

    let mut empty = Vec::new();
    let mut with_data = 0;
    for r in &rules {
        let got = prom.query(&r.name)?;
        match (got.is_empty(), may_be_empty(&r.expr)) {
            (false, _) => with_data += 1,
            (true, Some(why)) => eprintln!("no data (expected: {why}): rule {}", r.name),
            (true, None) => empty.push(format!("recording rule {}: {}", r.name, r.expr)),
        }
    }
    // A healthy host fires nothing.
    let firing = prom.query("ALERTS")?;
    assert!(firing.is_empty(), "alerts on a healthy host: {firing:?}");

    let (panels, vars) = dashboard_queries()?;
    for q in panels.iter().chain(&vars) {
        let expr = substitute(&q.expr);
        let got = prom
            .query(&expr)
            .with_context(|| format!("{} / {}", q.dashboard, q.panel))?;
        match (got.is_empty(), may_be_empty(&q.expr)) {
            (false, _) => with_data += 1,
            (true, Some(why)) => {
                eprintln!("no data (expected: {why}): {} / {}", q.dashboard, q.panel);
            }
            (true, None) => empty.push(format!("{} / {}: {expr}", q.dashboard, q.panel)),
        }
    }
    assert!(
        empty.is_empty(),
        "no data for:\n{}\n(with data: {with_data})",
        empty.join("\n")
    );
    // The per-pod panels see this test's pods, by name.
    let pods = prom.query("namespace_pod:ovs_port_rx_bytes:rate5m{namespace=\"mixin\"}")?;
    let names: BTreeSet<&str> = pods
        .iter()
        .filter_map(|s| s["metric"]["pod"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["pod0", "pod1", "pod2"]), "{pods:?}");
    Ok(())
}

#[test]
fn the_dashboards_are_well_formed() -> Result<()> {
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards()? {
        assert!(
            uids.insert(d["uid"].to_string()),
            "{name}: uid {} twice",
            d["uid"]
        );
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .context("templating")?
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            vars.starts_with(&["datasource", "node"]),
            "{name}: {vars:?}"
        );
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in d["panels"].as_array().context("panels")? {
            assert!(
                ids.insert(p["id"].to_string()),
                "{name}: id {} twice",
                p["id"]
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().context("x")?,
                g["y"].as_u64().context("y")?,
                g["w"].as_u64().context("w")?,
                g["h"].as_u64().context("h")?,
            );
            assert!(x + w <= 24 && w > 0 && h > 0, "{name}: {g}");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{name}: panels overlap at {g}");
                }
            }
            // Every query goes to the chosen data source and filters on the chosen node.
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: {}",
                p["title"]
            );
            for t in p["targets"].as_array().context("targets")? {
                let e = t["expr"].as_str().context("expr")?;
                assert!(
                    e.contains("node=~\"$node\""),
                    "{name}: {} ignores $node: {e}",
                    p["title"]
                );
            }
        }
    }
    Ok(())
}

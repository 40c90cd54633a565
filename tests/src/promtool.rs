//! The one way tests run `promtool` (Debian's prometheus package): `testbed::promtool` here,
//! and `common::promtool` in dataplane-collector's own tests, which include this file by path
//! (the collector's tests cannot depend on this crate, which depends on the collector). So it
//! uses `std` only.
//!
//! When promtool is not installed a check is skipped, with a `SKIPPED` line, unless
//! `DPC_REQUIRE_ROOT_TESTS=1`, which makes it an error.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What promtool said.
#[derive(Debug, Clone)]
pub struct Report {
    /// It exited 0.
    pub success: bool,
    /// Its stdout, then its stderr.
    pub output: String,
}

/// promtool on `$PATH`.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

/// Runs `promtool ARGS`, writing `stdin` to it. `Ok(None)`: not installed, and not required.
pub fn run(args: &[&str], stdin: Option<&str>) -> Result<Option<Report>, String> {
    if find().is_none() {
        if std::env::var("DPC_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1") {
            return Err("promtool is not installed (apt-get install prometheus)".to_owned());
        }
        eprintln!("SKIPPED promtool {}: not installed", args.join(" "));
        return Ok(None);
    }
    run_required(args, stdin).map(Some)
}

/// Runs `promtool ARGS`, writing `stdin` to it; promtool missing is an error.
pub fn run_required(args: &[&str], stdin: Option<&str>) -> Result<Report, String> {
    let promtool = find().ok_or("promtool is not installed (apt-get install prometheus)")?;
    let mut child = Command::new(&promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", promtool.display()))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .map_err(|e| format!("promtool stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("promtool: {e}"))?;
    Ok(Report {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// `promtool check metrics` on `text` (skipped when promtool is missing and not required).
/// Every problem fails but one lint, accepted on purpose: the SR-IOV series keep the seed
/// exporter's camelCase `pciAddr` label (its PromQL join key). A family with any other
/// camelCase label still fails.
pub fn check_metrics(text: &str) -> Result<(), String> {
    match run(&["check", "metrics"], Some(text))? {
        Some(report) => judge_metrics(text, &report),
        None => Ok(()),
    }
}

/// [`check_metrics`] with promtool required (the lab guest, where it is always installed).
pub fn check_metrics_required(text: &str) -> Result<(), String> {
    judge_metrics(text, &run_required(&["check", "metrics"], Some(text))?)
}

const CAMEL_CASE: &str = " label names should be written in 'snake_case' not 'camelCase'";

/// Whether `report` (promtool's on `text`) holds nothing but the accepted `pciAddr` lint.
pub fn judge_metrics(text: &str, report: &Report) -> Result<(), String> {
    let problems: Vec<&str> = report
        .output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            l.strip_suffix(CAMEL_CASE)
                .is_none_or(|family| !only_pci_addr_is_camel_case(text, family))
        })
        .collect();
    if problems.is_empty() && (report.success || !report.output.trim().is_empty()) {
        Ok(())
    } else {
        Err(format!("promtool check metrics:\n{}", report.output))
    }
}

/// Whether every camelCase label name on `family`'s samples in `text` is `pciAddr`.
fn only_pci_addr_is_camel_case(text: &str, family: &str) -> bool {
    let mut seen = false;
    for line in text.lines() {
        let Some(labels) = line
            .strip_prefix(family)
            .and_then(|rest| rest.strip_prefix('{'))
        else {
            continue;
        };
        seen = true;
        if label_names(labels)
            .iter()
            .any(|n| n != "pciAddr" && n.chars().any(|c| c.is_ascii_uppercase()))
        {
            return false;
        }
    }
    seen
}

/// The label names of `a="x",b="y\"z"} 1` (what follows a sample's `{`).
fn label_names(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut name = String::new();
    let mut chars = labels.chars();
    while let Some(c) = chars.next() {
        match c {
            '}' => break,
            ',' | ' ' => {}
            '=' => {
                names.push(std::mem::take(&mut name));
                let _ = chars.next(); // the opening quote
                while let Some(v) = chars.next() {
                    match v {
                        '\\' => {
                            let _ = chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            c => name.push(c),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pci_addr_lint_is_accepted() {
        let text = "a_total{pciAddr=\"0000:3b:02.0\",vf=\"0\"} 1\n\
                    b_total{pciAddr=\"x\",podName=\"p\"} 1\n";
        let report = |out: &str| Report {
            success: false,
            output: out.to_owned(),
        };
        assert!(judge_metrics(text, &report(&format!("a_total{CAMEL_CASE}\n"))).is_ok());
        assert!(judge_metrics(text, &report(&format!("b_total{CAMEL_CASE}\n"))).is_err());
        assert!(
            judge_metrics(
                text,
                &report("a_total counter metrics should have \"_total\" suffix\n")
            )
            .is_err()
        );
        assert!(judge_metrics(text, &report("")).is_err());
        assert_eq!(label_names("a=\"x\\\",y\",b=\"\"} 1"), ["a", "b"]);
    }
}

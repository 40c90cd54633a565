//! `cargo xtask fuzz [--seconds N] [--target NAME]`: runs every fuzz target (or one) under
//! libFuzzer for N seconds each, on the committed corpus, keeping what it finds worth keeping
//! in `fuzz/corpus/<target>/` and crashes in `fuzz/artifacts/<target>/`. Adds the time run to
//! `fuzz/hours.tsv` and writes executions per second and hours per target to BENCHMARKS.md.
//!
//! cargo-fuzz is installed from crates.io if missing. It asks rustc for `-Z` flags, which the
//! machine's one stable toolchain allows with `RUSTC_BOOTSTRAP=1` (as the kernel's Rust build
//! does). No sanitizer: the project has no `unsafe` (`unsafe_code = "deny"`), so AddressSanitizer
//! would find nothing safe Rust does not already check, at half the speed; debug assertions are
//! on (`-a`), so an arithmetic overflow is a crash. libFuzzer's own bounds make an allocation
//! over 2 GiB or an input running over 10 s a crash too.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The targets: `fuzz/fuzz_targets/*.rs` (each `dataplane_collector::fuzzing::NAME`).
fn targets(root: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("fuzz/fuzz_targets"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            (p.extension().is_some_and(|x| x == "rs"))
                .then(|| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .flatten()
        })
        .collect();
    names.sort();
    Ok(names)
}

fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// What libFuzzer printed at the end of a run.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    execs: u64,
    seconds: u64,
    coverage: u64,
    corpus: u64,
}

fn parse_stats(stderr: &str) -> Stats {
    let mut s = Stats::default();
    for line in stderr.lines() {
        let num = |l: &str| {
            l.rsplit(':')
                .next()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if line.starts_with("stat::number_of_executed_units:") {
            s.execs = num(line).unwrap_or(0);
        } else if line.starts_with("Done ") {
            // "Done 123456 runs in 61 second(s)"
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "in") {
                s.seconds = words.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
        }
        // "#123456 DONE cov: 1234 ft: 2345 corp: 100/20Kb ..."
        if line.contains(" DONE ") || line.contains("\tDONE ") {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                match *w {
                    "cov:" => {
                        s.coverage = words.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0)
                    }
                    "corp:" => {
                        s.corpus = words
                            .get(i + 1)
                            .and_then(|v| v.split('/').next())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                    }
                    _ => {}
                }
            }
        }
    }
    s
}

/// One row of `fuzz/hours.tsv`: the time fuzzed in all, and the last run's figures.
#[derive(Debug, Default, Clone)]
struct Record {
    seconds: u64,
    rate: u64,
    execs: u64,
    coverage: u64,
    corpus: u64,
    result: String,
}

const HOURS_HEADER: &str =
    "# target\tseconds fuzzed in all\tlast: execs/s\texecs\tcoverage\tcorpus\tresult\n";

fn load_hours(path: &Path) -> BTreeMap<String, Record> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            Some((
                (*f.first()?).to_owned(),
                Record {
                    seconds: n(1),
                    rate: n(2),
                    execs: n(3),
                    coverage: n(4),
                    corpus: n(5),
                    result: f.get(6).map_or_else(String::new, |v| v.trim().to_owned()),
                },
            ))
        })
        .collect()
}

fn save_hours(path: &Path, hours: &BTreeMap<String, Record>) -> Result<()> {
    let mut s = String::from(HOURS_HEADER);
    for (t, r) in hours {
        s.push_str(&format!(
            "{t}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.seconds, r.rate, r.execs, r.coverage, r.corpus, r.result
        ));
    }
    std::fs::write(path, s)?;
    Ok(())
}

pub fn run(seconds: u64, only: Option<&str>, out: &Path) -> Result<()> {
    let root = crate::workspace_root();
    ensure_cargo_fuzz()?;
    let all = targets(&root)?;
    let chosen: Vec<&String> = all
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.as_str()))
        .collect();
    if chosen.is_empty() {
        bail!("no fuzz target {:?} (have: {})", only, all.join(", "));
    }
    let hours_path = root.join("fuzz/hours.tsv");
    let mut hours = load_hours(&hours_path);
    let mut crashed = Vec::new();
    for t in chosen {
        eprintln!("xtask fuzz: {t} for {seconds} s");
        let corpus = root.join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        let output = Command::new("cargo")
            .current_dir(root.join("fuzz"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "fuzz",
                "run",
                "--sanitizer",
                "none",
                "--debug-assertions",
                t,
            ])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args([
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-max_len=65536",
                "-print_final_stats=1",
            ])
            .output()
            .with_context(|| format!("cannot run cargo fuzz for {t}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stats = parse_stats(&stderr);
        if !output.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
            eprintln!(
                "xtask fuzz: {t} FAILED ({}):\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            crashed.push(t.clone());
        }
        let r = hours.entry(t.clone()).or_default();
        r.seconds += stats.seconds;
        r.rate = stats.execs / stats.seconds.max(1);
        r.execs = stats.execs;
        r.coverage = stats.coverage;
        r.corpus = stats.corpus;
        r.result = if output.status.success() {
            format!("clean ({seconds} s)")
        } else {
            "CRASH (fuzz/artifacts)".to_owned()
        };
    }
    save_hours(&hours_path, &hours)?;

    let mut body = format!(
        "{}\n\nEach target's last run (`cargo xtask fuzz --seconds N`; `--sanitizer none \
         --debug-assertions`, see xtask/src/fuzz.rs) and the time fuzzed in all \
         (`fuzz/hours.tsv`).\n\n",
        crate::bench::header(),
    );
    body.push_str("| target | executions/s | executions | coverage (edges) | corpus | hours fuzzed in all | last result |\n|---|---|---|---|---|---|---|\n");
    for (t, r) in &hours {
        body.push_str(&format!(
            "| `{t}` | {} | {} | {} | {} | {:.2} | {} |\n",
            r.rate,
            r.execs,
            r.coverage,
            r.corpus,
            r.seconds as f64 / 3600.0,
            r.result
        ));
    }
    crate::bench::write_section(out, "Fuzzing", &body)?;
    eprintln!("xtask fuzz: wrote {}", out.display());
    if !crashed.is_empty() {
        bail!("fuzz targets crashed: {}", crashed.join(", "));
    }
    Ok(())
}

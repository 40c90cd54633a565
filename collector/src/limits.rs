//! Bounds on what peers send (a switch, ovsdb-server, an HTTP client, the kernel, a file), and
//! the process-wide count of times each bound was hit.
//!
//! Every bound has a name (`snake_case`, the subsystem first: `openflow_reply_bytes`,
//! `flow_filter_depth`, …) listed with its value and flag in docs/limits.md. Code that refuses
//! an input for going past a bound returns its own typed error *and* calls [`exceeded`], so the
//! scrape shows `dataplane_collector_limit_exceeded_total{limit="NAME"}`. Never a panic, an
//! abort or a stall.
//!
//! Series appear the first time a bound is hit (a bound that was never hit has no series, which
//! `increase()`/`rate()` read as 0); they are never removed, as counters must not be.

use crate::exposition::{MetricType, Writer};
use std::sync::Mutex;

/// Hits per bound, in order of first hit. Rare by nature: a mutex and a short list are enough.
static HITS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

/// Counts one refusal of an input that went past the bound `name`.
pub fn exceeded(name: &'static str) {
    let mut hits = match HITS.lock() {
        Ok(h) => h,
        Err(poisoned) => poisoned.into_inner(),
    };
    match hits.iter_mut().find(|(n, _)| *n == name) {
        Some((_, count)) => *count += 1,
        None => hits.push((name, 1)),
    }
}

/// How often `name` was hit so far (for tests and logs).
pub fn count(name: &str) -> u64 {
    let hits = match HITS.lock() {
        Ok(h) => h,
        Err(poisoned) => poisoned.into_inner(),
    };
    hits.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c)
}

/// Writes `dataplane_collector_limit_exceeded_total` (nothing before the first hit).
pub fn encode(w: &mut Writer) {
    let mut hits: Vec<(&'static str, u64)> = match HITS.lock() {
        Ok(h) => h.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    if hits.is_empty() {
        return;
    }
    hits.sort_unstable();
    w.family(
        "dataplane_collector_limit_exceeded_total",
        "Inputs refused because they went past a bound (docs/limits.md lists each bound, its value and its flag).",
        MetricType::Counter,
    );
    for (name, count) in hits {
        w.sample("dataplane_collector_limit_exceeded_total")
            .label("limit", name)
            .value_u64(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_bound_and_encodes_sorted() {
        exceeded("test_b_bound");
        exceeded("test_a_bound");
        exceeded("test_b_bound");
        assert_eq!(count("test_b_bound"), 2);
        assert_eq!(count("test_a_bound"), 1);
        assert_eq!(count("test_never_hit"), 0);
        let mut w = Writer::new();
        encode(&mut w);
        let text = w.into_string();
        let a = text
            .find("limit=\"test_a_bound\"} 1")
            .expect("a is encoded");
        let b = text
            .find("limit=\"test_b_bound\"} 2")
            .expect("b is encoded");
        assert!(a < b, "sorted by name:\n{text}");
    }
}

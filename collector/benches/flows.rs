//! `flows` parse and filter cost per line, in-process: the rich dump captured from a real
//! ovs-vswitchd (learn, ct/nat, bundle, conjunctions, IPv6…; 102 varied flows) repeated to
//! 100,000 lines. `cargo bench -p dataplane-collector --bench flows`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataplane_collector::flows::filter::Filter;
use dataplane_collector::flows::parse;
use dataplane_collector::flows::view;

const DUMP: &str = include_str!("../tests/fixtures/flows/rich.dump-of13.txt");
const LINES: usize = 100_000;

fn text() -> String {
    let flows: Vec<&str> = DUMP.lines().filter(|l| l.contains("actions=")).collect();
    let mut s = String::with_capacity(LINES * 160);
    for i in 0..LINES {
        s.push_str(flows[i % flows.len()]);
        s.push('\n');
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = text();
    let filter = Filter::parse("tcp and nw_dst~=10.96.1.7 or ct.zone=10").expect("filter");
    let mut g = c.benchmark_group("flows");
    g.throughput(Throughput::Elements(LINES as u64));
    g.sample_size(20);
    // What `flows` does: one reused flow buffer per thread (here one thread).
    g.bench_function("parse 100k lines", |b| {
        b.iter(|| {
            let mut errors = Vec::new();
            let mut n = 0usize;
            parse::for_each_flow(&text, &mut errors, |f| n += f.actions.len());
            n
        })
    });
    g.bench_function("parse + filter 100k lines", |b| {
        b.iter(|| {
            let mut errors = Vec::new();
            let mut n = 0usize;
            parse::for_each_flow(&text, &mut errors, |f| n += usize::from(filter.matches(f)));
            n
        })
    });
    // Every flow kept in memory (the views that need them all, without a filter).
    g.bench_function("parse_text 100k lines, all kept", |b| {
        b.iter(|| parse::parse_text(&text).flows.len())
    });
    let parsed = parse::parse_text(&text);
    g.bench_function("json of 100k flows", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(64 << 20);
            view::json::render(&mut out, parsed.flows.iter()).expect("write");
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

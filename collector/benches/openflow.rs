//! Decode and encode cost per flow, on the flow-corpus reply captured from a real ovs-vswitchd
//! (65 varied flows) repeated to 10,000 entries. `cargo bench -p dataplane-collector`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dataplane_collector::exposition::Writer;
use dataplane_collector::openflow::{Endpoint, FlowDecoder, FlowTable};
use dataplane_collector::sources::openflow::{BridgeData, BridgeResult, Snapshot, encode};

const BIN: &[u8] = include_bytes!("../tests/fixtures/flow-corpus.of13-flow-stats.bin");

fn entries() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = BIN;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let mut body = &rest[4..4 + len];
        while body.len() >= 2 {
            let l = u16::from_be_bytes([body[0], body[1]]) as usize;
            out.push(body[..l].to_vec());
            body = &body[l..];
        }
        rest = &rest[4 + len..];
    }
    out
}

/// Reply bodies of `n` flows, under 64 KiB each like Open vSwitch's.
fn bodies(n: usize) -> Vec<Vec<u8>> {
    let e = entries();
    let mut out = vec![Vec::new()];
    for i in 0..n {
        let mut f = e[i % e.len()].clone();
        f[24..32].copy_from_slice(&(i as u64).to_be_bytes());
        if out.last().is_some_and(|b| b.len() + f.len() > 65_000) {
            out.push(Vec::new());
        }
        if let Some(b) = out.last_mut() {
            b.extend_from_slice(&f);
        }
    }
    out
}

fn decode(bodies: &[Vec<u8>], actions: bool) -> FlowTable {
    let mut d = FlowDecoder::new(actions);
    let mut t = FlowTable::with_capacity(10_000);
    for b in bodies {
        let _ = d.decode(b, &mut t);
    }
    t
}

fn bench(c: &mut Criterion) {
    let n = 10_000;
    let b = bodies(n);
    let mut g = c.benchmark_group("openflow_10k_flows");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("decode", |x| x.iter(|| decode(&b, false)));
    g.bench_function("decode_with_actions", |x| x.iter(|| decode(&b, true)));
    let snapshot = Snapshot {
        bridges: vec![BridgeResult {
            bridge: "br-int".into(),
            endpoint: Endpoint::Unix("/x".into()),
            outcome: Ok(BridgeData {
                flows: decode(&b, false),
                read_flows: true,
                ..BridgeData::default()
            }),
        }],
    };
    g.bench_function("encode", |x| {
        x.iter(|| {
            let mut w = Writer::new();
            encode::encode(&snapshot, false, &mut w);
            w.into_bytes().len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

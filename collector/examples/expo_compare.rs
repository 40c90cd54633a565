//! The project's exposition writer (`exposition.rs`) against prometheus-client's text encoder,
//! on the same data: N flows (three series each, as `/flows` serves them) or every family of
//! the golden `/metrics` file. Run by `cargo xtask bench --only expo`, which starts one process
//! per case so each peak RSS is its own.
//!
//! `expo_compare <owned|owned-buffered|client|client-chunked> <flows N | golden FILE> <iterations>`
//!
//! Prints one line: `case=… series=… bytes=… median_ms=… min_ms=… rss_before_kib=… rss_peak_kib=…`.

use dataplane_collector::exposition::{ChunkSink, LabelArena, MetricType, Writer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

/// One flow entry's labels and counters, as the OpenFlow source has them after decoding.
#[derive(Debug)]
struct Flow {
    bridge: String,
    table: u8,
    priority: u16,
    cookie: u64,
    matches: String,
    actions: String,
    packets: u64,
    bytes: u64,
    duration: f64,
}

/// Flows shaped like a CNI's (as xtask's bench_flows makes them).
fn flows(n: usize) -> Vec<Flow> {
    (0..n)
        .map(|i| {
            let (a, b) = ((i >> 8) & 0xff, i & 0xff);
            let (table, priority, matches, actions) = match i % 4 {
                0 => (
                    0,
                    100,
                    format!("in_port={},dl_src=02:00:00:00:{a:02x}:{b:02x}", 1 + i % 3),
                    "resubmit(,1)".to_owned(),
                ),
                1 => (
                    1,
                    200,
                    format!("ip,nw_dst=10.0.{a}.{b}"),
                    format!(
                        "mod_dl_dst:02:00:00:00:{a:02x}:{b:02x},output:{}",
                        1 + i % 3
                    ),
                ),
                2 => (
                    2,
                    300,
                    format!("tcp,nw_dst=10.96.{a}.{b},tp_dst=80"),
                    format!("ct(commit,table=3,zone=1,nat(dst=10.244.{a}.{b}:8080))"),
                ),
                _ => (
                    3,
                    400,
                    format!("ct_state=+trk+est,ip,nw_src=10.244.{a}.{b}"),
                    format!("output:{}", 1 + i % 3),
                ),
            };
            Flow {
                bridge: "br-int".to_owned(),
                table,
                priority,
                cookie: ((i as u64 % 4) << 16) | (i as u64 % 64),
                matches,
                actions,
                packets: i as u64 * 7,
                bytes: i as u64 * 7 * 98,
                duration: i as f64 * 0.25 + 0.5,
            }
        })
        .collect()
}

/// A family of the golden file: name, help, type and samples (labels, value text).
#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    counter: bool,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

/// Reads a text exposition file (ours: one family's samples follow its HELP and TYPE; label
/// values have no `,` or `"` escapes in the golden file).
fn read_families(text: &str) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push(Family {
                name: name.to_owned(),
                help: help.to_owned(),
                counter: false,
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(f) = out.last_mut() {
                f.counter = rest.ends_with(" counter");
            }
        } else if let Some(f) = out.last_mut() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let labels = match series.split_once('{') {
                Some((_, l)) => l
                    .trim_end_matches('}')
                    .split("\",")
                    .filter_map(|kv| kv.split_once("=\""))
                    .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                    .collect(),
                None => Vec::new(),
            };
            f.samples.push((labels, value.parse().unwrap_or(0.0)));
        }
    }
    out
}

/// A sink that drops each chunk (as the socket would take it) and counts the bytes.
struct Counting(Arc<std::sync::atomic::AtomicUsize>);

impl ChunkSink for Counting {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.0
            .fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        true
    }
}

enum Data {
    Flows(Arc<Vec<Flow>>),
    Golden(Arc<Vec<Family>>),
}

fn owned(data: &Data, mut w: Writer) -> Writer {
    match data {
        Data::Flows(flows) => {
            // As the OpenFlow source does: each flow's label set rendered once, written into
            // its three series.
            let mut arena = LabelArena::with_capacity(flows.len(), flows.len() * 160);
            for f in flows.iter() {
                arena
                    .label("bridge", &f.bridge)
                    .label_u64("table", u64::from(f.table))
                    .label_u64("priority", u64::from(f.priority))
                    .label_hex("cookie", f.cookie)
                    .label("match", &f.matches)
                    .label("actions", &f.actions);
                arena.finish();
            }
            for (name, help, kind) in [
                (
                    "ovs_flow_packets_total",
                    "Packets that matched the OpenFlow flow entry.",
                    MetricType::Counter,
                ),
                (
                    "ovs_flow_bytes_total",
                    "Bytes that matched the OpenFlow flow entry.",
                    MetricType::Counter,
                ),
                (
                    "ovs_flow_duration_seconds",
                    "Time the flow entry has been installed.",
                    MetricType::Gauge,
                ),
            ] {
                w.family(name, help, kind);
                for (i, f) in flows.iter().enumerate() {
                    let s = w.sample(name).labels_raw(arena.get(i));
                    match kind {
                        MetricType::Counter if name.contains("packets") => s.value_u64(f.packets),
                        MetricType::Counter => s.value_u64(f.bytes),
                        MetricType::Gauge => s.value_f64(f.duration),
                    }
                }
            }
        }
        Data::Golden(families) => {
            for f in families.iter() {
                let kind = if f.counter {
                    MetricType::Counter
                } else {
                    MetricType::Gauge
                };
                w.family(&f.name, &f.help, kind);
                for (labels, value) in &f.samples {
                    let mut s = w.sample(&f.name);
                    for (k, v) in labels {
                        s = s.label(k, v);
                    }
                    s.value_f64(*value);
                }
            }
        }
    }
    w
}

#[derive(Debug)]
struct Client(Arc<Vec<Flow>>, Arc<Vec<Family>>);

impl Collector for Client {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let flows = &self.0;
        for (name, help, which) in [
            (
                "ovs_flow_packets",
                "Packets that matched the OpenFlow flow entry.",
                0,
            ),
            (
                "ovs_flow_bytes",
                "Bytes that matched the OpenFlow flow entry.",
                1,
            ),
            (
                "ovs_flow_duration_seconds",
                "Time the flow entry has been installed.",
                2,
            ),
        ] {
            if flows.is_empty() {
                break;
            }
            let kind = if which == 2 {
                prometheus_client::metrics::MetricType::Gauge
            } else {
                prometheus_client::metrics::MetricType::Counter
            };
            let mut fam = encoder.encode_descriptor(name, help, None, kind)?;
            for f in flows.iter() {
                let (table, priority, cookie) = (
                    f.table.to_string(),
                    f.priority.to_string(),
                    format!("{:#x}", f.cookie),
                );
                let labels: [(&str, &str); 6] = [
                    ("bridge", &f.bridge),
                    ("table", &table),
                    ("priority", &priority),
                    ("cookie", &cookie),
                    ("match", &f.matches),
                    ("actions", &f.actions),
                ];
                let m = fam.encode_family(&labels)?;
                match which {
                    0 => ConstCounter::new(f.packets).encode(m)?,
                    1 => ConstCounter::new(f.bytes).encode(m)?,
                    _ => ConstGauge::new(f.duration).encode(m)?,
                }
            }
        }
        for f in self.1.iter() {
            let name = f.name.strip_suffix("_total").unwrap_or(&f.name);
            let kind = if f.counter {
                prometheus_client::metrics::MetricType::Counter
            } else {
                prometheus_client::metrics::MetricType::Gauge
            };
            let mut fam = encoder.encode_descriptor(name, &f.help, None, kind)?;
            for (labels, value) in &f.samples {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let m = fam.encode_family(&labels)?;
                if f.counter {
                    ConstCounter::new(*value).encode(m)?;
                } else {
                    ConstGauge::new(*value).encode(m)?;
                }
            }
        }
        Ok(())
    }
}

/// A `fmt::Write` that hands 64 KiB chunks on, as a streaming server would.
struct ChunkedFmt {
    buf: String,
    sent: usize,
}

impl std::fmt::Write for ChunkedFmt {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= dataplane_collector::exposition::CHUNK_SIZE {
            self.sent += self.buf.len();
            self.buf.clear();
        }
        Ok(())
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "expo_compare <owned|owned-buffered|client|client-chunked> <flows N | golden FILE> <iterations>";
    let [_, case, what, arg, iters] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iters: usize = iters.parse().unwrap_or(5).max(1);
    let (data, series) = match what.as_str() {
        "flows" => {
            let n: usize = arg.parse().unwrap_or(10_000);
            (Data::Flows(Arc::new(flows(n))), 3 * n)
        }
        "golden" => {
            let text = std::fs::read_to_string(arg).unwrap_or_else(|e| {
                eprintln!("{arg}: {e}");
                std::process::exit(2)
            });
            let fams = read_families(&text);
            let n = fams.iter().map(|f| f.samples.len()).sum();
            (Data::Golden(Arc::new(fams)), n)
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let mut registry = Registry::default();
    if case.starts_with("client") {
        let c = match &data {
            Data::Flows(f) => Client(f.clone(), Arc::new(Vec::new())),
            Data::Golden(g) => Client(Arc::new(Vec::new()), g.clone()),
        };
        registry.register_collector(Box::new(c));
    }
    let rss_before = vm_hwm_kib();
    let mut times = Vec::with_capacity(iters);
    let mut bytes = 0;
    for _ in 0..iters {
        let t = Instant::now();
        bytes = match case.as_str() {
            "owned" => {
                let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                owned(&data, Writer::streaming(Counting(n.clone()))).finish();
                n.load(std::sync::atomic::Ordering::Relaxed)
            }
            "owned-buffered" => owned(&data, Writer::new()).into_bytes().len(),
            "client" => {
                let mut s = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut s, &registry);
                s.len()
            }
            "client-chunked" => {
                let mut s = ChunkedFmt {
                    buf: String::with_capacity(dataplane_collector::exposition::CHUNK_SIZE + 4096),
                    sent: 0,
                };
                let _ = prometheus_client::encoding::text::encode(&mut s, &registry);
                s.sent + s.buf.len()
            }
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        };
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "case={case} series={series} bytes={bytes} median_ms={:.3} min_ms={:.3} rss_before_kib={rss_before} rss_peak_kib={}",
        times[times.len() / 2],
        times[0],
        vm_hwm_kib()
    );
}

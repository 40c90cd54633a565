//! The Prometheus text exposition format (version 0.0.4) and OpenMetrics text (1.0.0), written
//! straight into bytes. [`Format::negotiate`] picks one from a scrape's `Accept` header, as
//! Prometheus asks for OpenMetrics first; the two differ only in a counter family's name on its
//! `# HELP`/`# TYPE` lines (without `_total` in OpenMetrics), the escaping of HELP text and the
//! closing `# EOF`, so every source writes once for both.
//!
//! Sources read their counters at scrape time and write them here as constant samples; nothing
//! is kept between scrapes, so a port, flow or device that is gone has no series. The writer can
//! stream: once its buffer passes [`CHUNK_SIZE`] it hands the bytes to a [`ChunkSink`], which keeps
//! memory flat even for 100k-flow tables.

use std::fmt::Write as _;

/// Bytes buffered before a chunk is handed to the sink.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which text format a [`Writer`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    #[default]
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format a client's `Accept` header prefers: OpenMetrics when it asks for
    /// `application/openmetrics-text` (version 1.0.0 or 0.0.1, the two Prometheus asks for, or
    /// no version) with a weight above zero and at least that of `text/plain` and of `*/*`;
    /// the text format otherwise, and when there is no header or it does not parse. At most
    /// [`MAX_ACCEPT_RANGES`] media ranges are read.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut om, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',').take(MAX_ACCEPT_RANGES) {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => {
                        q = v
                            .trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|q| q.is_finite())
                            .unwrap_or(0.0)
                    }
                    "version" => version = Some(v.trim().trim_matches('"').to_owned()),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if matches!(version.as_deref(), None | Some("1.0.0" | "0.0.1")) =>
                {
                    om = om.max(q);
                }
                "text/plain" | "*/*" | "text/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// Media ranges of an `Accept` header [`Format::negotiate`] reads (Prometheus sends four).
pub const MAX_ACCEPT_RANGES: usize = 32;

/// A metric family's type, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// Where full chunks go. Returns `false` once the receiver is gone (client hung up); the writer
/// then drops further output.
pub trait ChunkSink: Send {
    fn send(&mut self, chunk: Vec<u8>) -> bool;
}

/// Writes metric families and samples.
pub struct Writer {
    buf: Vec<u8>,
    sink: Option<Box<dyn ChunkSink>>,
    closed: bool,
    format: Format,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    /// A writer that keeps the whole output in memory.
    pub fn new() -> Self {
        Writer {
            buf: Vec::with_capacity(16 * 1024),
            sink: None,
            closed: false,
            format: Format::Text,
        }
    }

    /// The same writer, writing `format`.
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The format it writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The whole output (with OpenMetrics' `# EOF`).
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.end();
        self.buf
    }

    /// The whole output, as text (the writer only ever writes UTF-8).
    pub fn into_string(self) -> String {
        String::from_utf8_lossy(&self.into_bytes()).into_owned()
    }

    fn end(&mut self) {
        if self.format == Format::OpenMetrics {
            self.buf.extend_from_slice(b"# EOF\n");
        }
    }

    /// A writer that hands chunks of about [`CHUNK_SIZE`] bytes to `sink`.
    pub fn streaming(sink: impl ChunkSink + 'static) -> Self {
        Writer {
            buf: Vec::with_capacity(CHUNK_SIZE + 4096),
            sink: Some(Box::new(sink)),
            closed: false,
            format: Format::Text,
        }
    }

    /// True once the receiving end has gone away; callers may stop early.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. All of a family's samples must follow
    /// before the next family starts. `name` is the samples' name (a counter's ends in
    /// `_total`); in OpenMetrics a counter family is named without it, and a counter whose name
    /// lacks it is typed `unknown` there, which any sample name may have.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        self.maybe_flush();
        let (family, kind) = match (self.format, kind) {
            (Format::OpenMetrics, MetricType::Counter) => match name.strip_suffix("_total") {
                Some(base) if !base.is_empty() => (base, "counter"),
                _ => (name, "unknown"),
            },
            (_, kind) => (name, kind.as_str()),
        };
        self.buf.extend_from_slice(b"# HELP ");
        self.buf.extend_from_slice(family.as_bytes());
        self.buf.push(b' ');
        match self.format {
            Format::Text => escape_help(&mut self.buf, help),
            Format::OpenMetrics => escape_label_value(&mut self.buf, help),
        }
        self.buf.extend_from_slice(b"\n# TYPE ");
        self.buf.extend_from_slice(family.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(kind.as_bytes());
        self.buf.push(b'\n');
    }

    /// Starts a sample line of metric `name`; add labels, then finish it with a value.
    pub fn sample(&mut self, name: &str) -> Sample<'_> {
        self.maybe_flush();
        self.buf.extend_from_slice(name.as_bytes());
        Sample {
            buf: &mut self.buf,
            has_labels: false,
        }
    }

    /// Ends the output (OpenMetrics' `# EOF`) and hands the rest of the buffer to the sink.
    pub fn finish(mut self) {
        self.end();
        self.flush();
    }

    fn maybe_flush(&mut self) {
        if self.buf.len() >= CHUNK_SIZE && self.sink.is_some() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if self.buf.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE + 4096));
        if !self.closed && !sink.send(chunk) {
            self.closed = true;
        }
    }
}

/// One sample line being written.
pub struct Sample<'a> {
    buf: &'a mut Vec<u8>,
    has_labels: bool,
}

impl Sample<'_> {
    fn label_start(&mut self, name: &str) {
        self.buf.push(if self.has_labels { b',' } else { b'{' });
        self.has_labels = true;
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"=\"");
    }

    /// Adds a label with a string value (escaped as the format requires).
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.label_start(name);
        escape_label_value(self.buf, value);
        self.buf.push(b'"');
        self
    }

    /// Adds a label with an unsigned integer value.
    pub fn label_u64(mut self, name: &str, value: u64) -> Self {
        self.label_start(name);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(value).as_bytes());
        self.buf.push(b'"');
        self
    }

    /// Adds a label whose value is `0x` followed by lower-case hex (OpenFlow cookies).
    pub fn label_hex(mut self, name: &str, value: u64) -> Self {
        self.label_start(name);
        push_hex(self.buf, value);
        self.buf.push(b'"');
        self
    }

    /// Appends labels pre-rendered by a [`LabelArena`] (for label sets written several times).
    pub fn labels_raw(mut self, rendered: &[u8]) -> Self {
        if !rendered.is_empty() {
            self.buf.push(if self.has_labels { b',' } else { b'{' });
            self.has_labels = true;
            self.buf.extend_from_slice(rendered);
        }
        self
    }

    fn value_start(&mut self) {
        if self.has_labels {
            self.buf.push(b'}');
        }
        self.buf.push(b' ');
    }

    /// Ends the line with an integer value.
    pub fn value_u64(mut self, value: u64) {
        self.value_start();
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(value).as_bytes());
        self.buf.push(b'\n');
    }

    /// Ends the line with a signed integer value.
    pub fn value_i64(mut self, value: i64) {
        self.value_start();
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(value).as_bytes());
        self.buf.push(b'\n');
    }

    /// Ends the line with a floating-point value.
    pub fn value_f64(mut self, value: f64) {
        self.value_start();
        push_f64(self.buf, value);
        self.buf.push(b'\n');
    }

    /// Ends the line with an exact decimal number of seconds (`sec.nnnnnnnnn`, trailing zeros
    /// trimmed), the form OpenFlow durations arrive in.
    pub fn value_duration(mut self, sec: u32, nsec: u32) {
        self.value_start();
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(sec).as_bytes());
        let nsec = nsec.min(999_999_999);
        if nsec != 0 {
            let mut digits = [b'0'; 9];
            let mut n = nsec;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let mut len = 9;
            while len > 0 && digits[len - 1] == b'0' {
                len -= 1;
            }
            self.buf.push(b'.');
            self.buf.extend_from_slice(&digits[..len]);
        }
        self.buf.push(b'\n');
    }
}

/// Label sets rendered once and written into several families (a flow's labels appear in
/// its packets, bytes and duration series).
#[derive(Default)]
pub struct LabelArena {
    buf: Vec<u8>,
    ends: Vec<usize>,
    open: bool,
}

impl LabelArena {
    pub fn with_capacity(sets: usize, bytes: usize) -> Self {
        LabelArena {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(sets),
            open: false,
        }
    }

    fn sep(&mut self, name: &str) {
        if self.open {
            self.buf.push(b',');
        }
        self.open = true;
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"=\"");
    }

    pub fn label(&mut self, name: &str, value: &str) -> &mut Self {
        self.sep(name);
        escape_label_value(&mut self.buf, value);
        self.buf.push(b'"');
        self
    }

    pub fn label_u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.sep(name);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(value).as_bytes());
        self.buf.push(b'"');
        self
    }

    pub fn label_hex(&mut self, name: &str, value: u64) -> &mut Self {
        self.sep(name);
        push_hex(&mut self.buf, value);
        self.buf.push(b'"');
        self
    }

    /// Ends the current label set.
    pub fn finish(&mut self) {
        self.ends.push(self.buf.len());
        self.open = false;
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th label set, rendered.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

fn push_hex(buf: &mut Vec<u8>, value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.extend_from_slice(b"0x");
    if value == 0 {
        buf.push(b'0');
        return;
    }
    let nibbles = (64 - value.leading_zeros()).div_ceil(4);
    for i in (0..nibbles).rev() {
        buf.push(HEX[((value >> (i * 4)) & 0xf) as usize]);
    }
}

fn push_f64(buf: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        buf.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        buf.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let mut s = String::new();
        // `Display` for f64 prints the shortest representation that round-trips.
        let _ = write!(s, "{value}");
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Label values escape backslash, double quote and line feed.
pub fn escape_label_value(buf: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if !bytes.iter().any(|&c| c == b'\\' || c == b'"' || c == b'\n') {
        buf.extend_from_slice(bytes);
        return;
    }
    for &c in bytes {
        match c {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\n' => buf.extend_from_slice(b"\\n"),
            _ => buf.push(c),
        }
    }
}

/// HELP text escapes backslash and line feed.
fn escape_help(buf: &mut Vec<u8>, help: &str) {
    for &c in help.as_bytes() {
        match c {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            _ => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_samples() {
        let mut w = Writer::new();
        w.family("x_total", "Things.\nMore\\", MetricType::Counter);
        w.sample("x_total")
            .label("a", "q\"u\\o\nte")
            .label_u64("n", 42)
            .label_hex("cookie", 0xab)
            .value_u64(7);
        w.sample("x_total").value_u64(0);
        w.family("d_seconds", "D.", MetricType::Gauge);
        w.sample("d_seconds").value_duration(12, 345_000_000);
        w.sample("d_seconds").value_duration(3, 0);
        w.sample("d_seconds").value_duration(0, 1);
        w.sample("d_seconds").value_f64(0.25);
        w.sample("d_seconds").value_f64(f64::NAN);
        w.sample("d_seconds").value_i64(-3);
        assert_eq!(
            w.into_string(),
            "# HELP x_total Things.\\nMore\\\\\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"u\\\\o\\nte\",n=\"42\",cookie=\"0xab\"} 7\n\
             x_total 0\n\
             # HELP d_seconds D.\n# TYPE d_seconds gauge\n\
             d_seconds 12.345\nd_seconds 3\nd_seconds 0.000000001\nd_seconds 0.25\nd_seconds NaN\nd_seconds -3\n"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let mut w = Writer::new().with_format(Format::OpenMetrics);
        w.family("x_total", "Say \"hi\".\nMore\\", MetricType::Counter);
        w.sample("x_total").label("a", "b").value_u64(7);
        w.family("odd", "A counter without the suffix.", MetricType::Counter);
        w.sample("odd").value_u64(1);
        w.family("_total", "Nothing before the suffix.", MetricType::Counter);
        w.sample("_total").value_u64(2);
        w.family("g_bytes", "G.", MetricType::Gauge);
        w.sample("g_bytes").value_f64(1.5);
        assert_eq!(
            w.into_string(),
            "# HELP x Say \\\"hi\\\".\\nMore\\\\\n# TYPE x counter\nx_total{a=\"b\"} 7\n\
             # HELP odd A counter without the suffix.\n# TYPE odd unknown\nodd 1\n\
             # HELP _total Nothing before the suffix.\n# TYPE _total unknown\n_total 2\n\
             # HELP g_bytes G.\n# TYPE g_bytes gauge\ng_bytes 1.5\n# EOF\n"
        );
        // Streamed, `# EOF` comes once, at the very end.
        let chunks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w =
            Writer::streaming(VecSink(chunks.clone(), usize::MAX)).with_format(Format::OpenMetrics);
        w.family("y_total", "Y.", MetricType::Counter);
        w.sample("y_total").value_u64(1);
        w.finish();
        let got: Vec<u8> = chunks.lock().map(|c| c.concat()).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&got),
            "# HELP y Y.\n# TYPE y counter\ny_total 1\n# EOF\n"
        );
    }

    #[test]
    fn negotiation_follows_the_accept_header() {
        use Format::{OpenMetrics as Om, Text};
        for (accept, want) in [
            (None, Text),
            (Some(""), Text),
            // Prometheus 2.x's default.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                Om,
            ),
            // Prometheus 3.x with text first (scrape_protocols: [PrometheusText0.0.4, ...]).
            (
                Some(
                    "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.8",
                ),
                Text,
            ),
            (Some("application/openmetrics-text"), Om),
            (Some("Application/OpenMetrics-Text; Version=\"1.0.0\""), Om),
            (Some("application/openmetrics-text;version=2.0.0"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;q=nan"), Text),
            (Some("application/openmetrics-text;q=0.5,*/*"), Text),
            (Some("text/plain"), Text),
            (Some("*/*"), Text),
            (Some(";;;,,,=,q=,version"), Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
        // Past the bound, ranges are not read.
        let long = format!(
            "{}application/openmetrics-text",
            "x/y,".repeat(MAX_ACCEPT_RANGES)
        );
        assert_eq!(Format::negotiate(Some(&long)), Text);
        assert_eq!(Om.content_type(), OPENMETRICS_CONTENT_TYPE);
        assert_eq!(Text.content_type(), CONTENT_TYPE);
    }

    #[test]
    fn arena_matches_direct_labels() {
        let mut arena = LabelArena::default();
        arena
            .label("a", "x\"y")
            .label_u64("n", 3)
            .label_hex("c", 255);
        arena.finish();
        arena.finish();
        let mut w = Writer::new();
        w.sample("m")
            .label("bridge", "b")
            .labels_raw(arena.get(0))
            .value_u64(1);
        w.sample("m").labels_raw(arena.get(1)).value_u64(2);
        w.sample("m").labels_raw(arena.get(0)).value_u64(3);
        assert_eq!(
            w.into_string(),
            "m{bridge=\"b\",a=\"x\\\"y\",n=\"3\",c=\"0xff\"} 1\nm 2\nm{a=\"x\\\"y\",n=\"3\",c=\"0xff\"} 3\n"
        );
    }

    #[test]
    fn hex_labels() {
        for (v, s) in [
            (0u64, "0x0"),
            (1, "0x1"),
            (0x10, "0x10"),
            (u64::MAX, "0xffffffffffffffff"),
        ] {
            let mut b = Vec::new();
            push_hex(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap_or_default(), s);
        }
    }

    struct VecSink(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>, usize);
    impl ChunkSink for VecSink {
        fn send(&mut self, chunk: Vec<u8>) -> bool {
            if let Ok(mut v) = self.0.lock() {
                v.push(chunk);
            }
            self.0.lock().map(|v| v.len() < self.1).unwrap_or(false)
        }
    }

    #[test]
    fn streaming_chunks_and_early_close() {
        let chunks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w = Writer::streaming(VecSink(chunks.clone(), usize::MAX));
        w.family("m", "h", MetricType::Gauge);
        for i in 0..20_000u64 {
            w.sample("m").label_u64("i", i).value_u64(i);
        }
        w.finish();
        let got = chunks.lock().map(|v| v.clone()).unwrap_or_default();
        assert!(got.len() > 3, "expected several chunks, got {}", got.len());
        assert!(got.iter().all(|c| c.len() < CHUNK_SIZE + 4096));
        let all: Vec<u8> = got.concat();
        let text = String::from_utf8(all).unwrap_or_default();
        assert_eq!(text.lines().count(), 20_002);
        assert!(text.ends_with("m{i=\"19999\"} 19999\n"));

        // The receiver goes away after two chunks: the writer notices and stops sending.
        let chunks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w = Writer::streaming(VecSink(chunks.clone(), 2));
        w.family("m", "h", MetricType::Gauge);
        for i in 0..50_000u64 {
            w.sample("m").label_u64("i", i).value_u64(i);
            if w.is_closed() {
                break;
            }
        }
        assert!(w.is_closed());
        assert_eq!(chunks.lock().map(|v| v.len()).unwrap_or(0), 2);
    }
}

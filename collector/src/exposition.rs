//! The Prometheus text exposition format (version 0.0.4), written straight into bytes.
//!
//! Sources read their counters at scrape time and write them here as constant samples; nothing
//! is kept between scrapes, so a port, flow or device that is gone has no series. The writer can
//! stream: once its buffer passes [`CHUNK_SIZE`] it hands the bytes to a [`ChunkSink`], which keeps
//! memory flat even for 100k-flow tables.

use std::fmt::Write as _;

/// Bytes buffered before a chunk is handed to the sink.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The `Content-Type` of what [`Writer`] produces.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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
        }
    }

    /// The output so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The output so far, as text (the writer only ever writes UTF-8).
    pub fn into_string(self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// A writer that hands chunks of about [`CHUNK_SIZE`] bytes to `sink`.
    pub fn streaming(sink: impl ChunkSink + 'static) -> Self {
        Writer {
            buf: Vec::with_capacity(CHUNK_SIZE + 4096),
            sink: Some(Box::new(sink)),
            closed: false,
        }
    }

    /// True once the receiving end has gone away; callers may stop early.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. All of a family's samples must follow
    /// before the next family starts.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        self.maybe_flush();
        self.buf.extend_from_slice(b"# HELP ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b' ');
        escape_help(&mut self.buf, help);
        self.buf.extend_from_slice(b"\n# TYPE ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(kind.as_str().as_bytes());
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

    /// Hands the rest of the buffer to the sink.
    pub fn finish(mut self) {
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

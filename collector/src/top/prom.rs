//! A small, bounded reader of the Prometheus text format (0.0.4, and OpenMetrics' `# EOF`), for
//! `top`: it keeps only the samples of the families asked for, and at most so many of them.

/// Largest `/metrics` body `top` reads (`top_response_bytes`): a 100k-flow node serves ~30 MB.
pub const MAX_BODY_BYTES: usize = 256 << 20;
/// Most samples `top` keeps from one body (`top_series`), counting only the families it reads.
pub const MAX_SERIES: usize = 1_000_000;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: &'static str },
    #[error("more than {max} series of the families top reads")]
    TooManySeries { max: usize },
}

/// The samples of `text` whose metric name `keep` accepts, at most `max_series` of them.
pub fn parse(
    text: &str,
    keep: impl Fn(&str) -> bool,
    max_series: usize,
) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason| ParseError::Line {
            line: i + 1,
            reason,
        };
        let name_end = line.find(['{', ' ', '\t']).ok_or(bad("no value"))?;
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            return Err(bad("bad metric name"));
        }
        if !keep(name) {
            continue;
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = parse_labels(r, &mut labels).map_err(bad)?;
        }
        let value = rest
            .split_ascii_whitespace()
            .next()
            .ok_or(bad("no value"))?;
        let value = match value {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().map_err(|_| bad("bad value"))?,
        };
        if out.len() >= max_series {
            crate::limits::exceeded("top_series");
            return Err(ParseError::TooManySeries { max: max_series });
        }
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// Reads `a="b",c="d"}` into `labels`; what follows the `}`.
fn parse_labels<'a>(
    mut s: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("unterminated labels")?;
        let key = s[..eq].trim();
        if key.is_empty() {
            return Err("empty label name");
        }
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_labels_escapes_and_special_values() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                    a_total{x=\"1\",y=\"q\\\"u\\\\o\\nte\"} 42\n\
                    b 1.5e3 1700000000000\n\
                    c{} +Inf\n\
                    skipped{z=\"}\"} 1\n\
                    d{a=\"x\",} NaN\n# EOF\n";
        let got = parse(text, |n| n != "skipped", 10).expect("parses");
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].name, "a_total");
        assert_eq!(got[0].label("x"), Some("1"));
        assert_eq!(got[0].label("y"), Some("q\"u\\o\nte"));
        assert_eq!(got[0].value, 42.0);
        assert_eq!(got[1].value, 1500.0);
        assert!(got[1].labels.is_empty());
        assert_eq!(got[2].value, f64::INFINITY);
        assert_eq!(got[3].label("a"), Some("x"));
        assert!(got[3].value.is_nan());
    }

    #[test]
    fn refuses_bad_lines_with_their_number() {
        for (text, reason) in [
            ("ok 1\nbad{a=\"x\" 1\n", "unterminated labels"),
            ("ok 1\nbad{a=\"x 1\n", "unterminated label value"),
            ("ok 1\nbad{a=x} 1\n", "label value not quoted"),
            ("ok 1\nbad x\n", "bad value"),
            ("ok 1\nbad\n", "no value"),
            ("ok 1\nb-d 1\n", "bad metric name"),
        ] {
            assert_eq!(
                parse(text, |_| true, 10),
                Err(ParseError::Line { line: 2, reason }),
                "{text}"
            );
        }
    }

    #[test]
    fn series_are_bounded() {
        let before = crate::limits::count("top_series");
        let text = "a 1\na 2\na 3\nb 1\n";
        assert_eq!(parse(text, |n| n == "a", 3).map(|v| v.len()), Ok(3));
        assert_eq!(
            parse(text, |_| true, 3),
            Err(ParseError::TooManySeries { max: 3 })
        );
        assert!(crate::limits::count("top_series") > before);
    }
}

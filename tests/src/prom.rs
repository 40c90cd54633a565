//! A small parser for the Prometheus text format, to check what the daemon serves.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> &str {
        self.labels.get(k).map_or("", String::as_str)
    }
}

/// Parses every sample line (comments skipped).
pub fn parse(text: &str) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).with_context(|| format!("line {}: {line}", n + 1))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => bail!("no value"),
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut key = String::new();
        let end;
        loop {
            let Some((i, c)) = chars.next() else {
                bail!("unterminated labels")
            };
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' => {}
                '=' => {
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        bail!("label value must be quoted");
                    }
                    let mut value = String::new();
                    loop {
                        let Some((_, c)) = chars.next() else {
                            bail!("unterminated value")
                        };
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(c) => value.push(c),
                                None => bail!("bad escape"),
                            },
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
        rest = &r[end..];
    }
    let value = rest.trim();
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().with_context(|| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Samples of one metric.
pub fn by_name<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_escapes() {
        let s = parse("# HELP x y\nx{a=\"1\",b=\"q\\\"\\\\\\n,}\"} 3\ny 4.5\n").unwrap_or_default();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].label("b"), "q\"\\\n,}");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].name, "y");
    }
}

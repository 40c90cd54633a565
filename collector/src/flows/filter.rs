//! Filter expressions, in the syntax of ofparse and `ovs.flow.filter.OFFilter`:
//!
//! ```text
//! nw_src=10.0.0.1 and n_packets>0
//! (tcp or udp) and not ct_state~=+trk
//! nw_dst~=10.96.0.1 || output.port=3
//! ```
//!
//! A clause is `KEY`, or `KEY OP VALUE` with `OP` one of `=`, `!=`, `<`, `>`, `~=`. `KEY` names
//! a key of the info section (`table`, `n_packets`, `cookie`, `duration`…), of the match
//! (`nw_src`, `reg0`, `priority`…) or an action (`output`, `ct`, `resubmit`…), searched in that
//! order; dots go into nested values (`ct.zone`, `output.port`, `resubmit.table`). A key alone
//! is true when the flow has it. The value is read the way the flow's own value is: an integer
//! for counters, a value/mask for `reg0=0x1/0xff`, a network for `nw_src=10.0.0.0/8`.
//!
//! `~=` is the masked comparison, as in ofparse: `nw_src~=10.0.0.5` holds when the flow's
//! `nw_src` (say `10.0.0.0/24`) contains 10.0.0.5; `reg0~=0x5` when `0x5` matches the flow's
//! value under its mask; on text it is "contains". `not`/`!`, `and`/`&&`, `or`/`||` and
//! parentheses combine clauses (`not` binds tightest, then `and`, then `or`).

use crate::flows::parse::{self, Flow, Kv, Value};

/// Why a filter expression does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unexpected end of the filter expression (expected {expected})")]
    End { expected: &'static str },
    #[error("unexpected {found:?} at column {column} of the filter (expected {expected})")]
    Unexpected {
        found: String,
        column: usize,
        expected: &'static str,
    },
    #[error("the filter is {len} bytes long; at most {MAX_FILTER_LEN} are read")]
    TooLong { len: usize },
    #[error(
        "the filter nests `(` and `not` more than {MAX_FILTER_DEPTH} deep (at column {column})"
    )]
    TooDeep { column: usize },
}

/// Longest filter expression read (bytes): `flow_filter_length` in docs/limits.md.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of `(` and `not` (the parser recurses once per level):
/// `flow_filter_depth` in docs/limits.md.
pub const MAX_FILTER_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Contains,
}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Clause(Box<Clause>),
    Not(Box<Filter>),
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub path: Vec<String>,
    /// The key as written (may hold dots: learn keys like `NXM_OF_VLAN_TCI[0..11]`).
    pub key: String,
    pub test: Option<(Op, Operand)>,
}

/// The clause's value, read every way it may be needed, once.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    pub text: String,
    int: Option<u128>,
    float: Option<f64>,
    masked: Option<(u128, Option<u128>)>,
    ip: Option<(std::net::IpAddr, std::net::IpAddr, String)>,
    eth: Option<parse::EthMask>,
    boolean: Option<bool>,
}

impl Operand {
    fn new(text: &str) -> Operand {
        let masked = match text.split_once('/') {
            Some((v, m)) => parse::py_int(v)
                .zip(parse::py_int(m))
                .map(|(v, m)| (v, Some(m))),
            None => parse::py_int(text).map(|v| (v, None)),
        };
        let ip = parse::parse_ip_mask(text).map(|i| (i.addr, i.mask, i.text.to_owned()));
        let eth = match parse::eth_value(text) {
            Value::Eth(e) => Some(e),
            _ => None,
        };
        Operand {
            text: text.to_owned(),
            int: parse::py_int(text),
            float: text.parse().ok(),
            masked,
            ip,
            eth,
            boolean: match text {
                "true" | "True" | "1" | "yes" => Some(true),
                "false" | "False" | "0" | "no" => Some(false),
                _ => None,
            },
        }
    }

    fn ip_mask(&self) -> Option<parse::IpMask<'_>> {
        self.ip.as_ref().map(|(addr, mask, text)| parse::IpMask {
            text,
            addr: *addr,
            mask: *mask,
            prefix: None,
        })
    }
}

impl Filter {
    /// Parses an expression.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        if expr.len() > MAX_FILTER_LEN {
            crate::limits::exceeded("flow_filter_length");
            return Err(FilterError::TooLong { len: expr.len() });
        }
        let tokens = lex(expr)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let f = p.or()?;
        if let Some(t) = p.tokens.get(p.pos) {
            return Err(FilterError::Unexpected {
                found: t.text.clone(),
                column: t.column,
                expected: "`and`, `or` or the end",
            });
        }
        Ok(f)
    }

    /// Whether the flow passes.
    pub fn matches(&self, flow: &Flow<'_>) -> bool {
        match self {
            Filter::Clause(c) => c.eval(flow),
            Filter::Not(f) => !f.matches(flow),
            Filter::And(fs) => fs.iter().all(|f| f.matches(flow)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(flow)),
        }
    }
}

impl Clause {
    fn find<'v>(&self, flow: &'v Flow<'v>) -> Option<&'v Value<'v>> {
        for section in [&flow.info, &flow.matches, &flow.actions] {
            if let Some(v) = find_in(section, &self.key, &self.path) {
                return Some(v);
            }
        }
        None
    }

    fn eval(&self, flow: &Flow<'_>) -> bool {
        let Some(value) = self.find(flow) else {
            return false;
        };
        match &self.test {
            None => true,
            Some((Op::Ne, operand)) => !compare(value, Op::Eq, operand),
            Some((op, operand)) => compare(value, *op, operand),
        }
    }
}

fn find_in<'v>(kvs: &'v [Kv<'v>], key: &str, path: &[String]) -> Option<&'v Value<'v>> {
    let first = path.first()?;
    for kv in kvs {
        if kv.key == key {
            return Some(&kv.value);
        }
        if kv.key != first.as_str() || path.len() < 2 {
            continue;
        }
        let mut data = &kv.value;
        let mut found = true;
        for sub in &path[1..] {
            match data {
                Value::Map(items) => match items.iter().find(|i| i.key == sub.as_str()) {
                    Some(i) => data = &i.value,
                    None => {
                        found = false;
                        break;
                    }
                },
                _ => {
                    found = false;
                    break;
                }
            }
        }
        if found {
            return Some(data);
        }
    }
    None
}

fn cmp_ord<T: PartialOrd>(a: T, op: Op, b: T) -> bool {
    match op {
        Op::Eq | Op::Contains => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Gt => a > b,
    }
}

fn compare(value: &Value<'_>, op: Op, o: &Operand) -> bool {
    match value {
        Value::Flag => o.boolean.is_some_and(|b| cmp_ord(true, op, b)),
        Value::Int(v) => match o.int {
            Some(i) => cmp_ord(*v, op, i),
            None => o.float.is_some_and(|f| cmp_ord(*v as f64, op, f)),
        },
        Value::Float(v) => o.float.is_some_and(|f| cmp_ord(*v, op, f)),
        Value::Str(s) => match op {
            Op::Contains => s.contains(o.text.as_str()),
            _ => cmp_ord(*s, op, o.text.as_str()),
        },
        Value::Masked { value, mask, bits } => {
            let full = if *bits >= 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            let Some((v, m)) = o.masked else {
                return false;
            };
            match op {
                Op::Eq | Op::Ne => *value == v && *mask == m.unwrap_or(full),
                Op::Contains => match m {
                    // A fully masked value inside the flow's masked one.
                    None => v & mask == value & mask,
                    Some(m) => (m & mask) == *mask && v & mask == value & mask,
                },
                Op::Lt => *value < v,
                Op::Gt => *value > v,
            }
        }
        Value::Ip(ip) => {
            let Some(other) = o.ip_mask() else {
                return false;
            };
            match op {
                Op::Eq | Op::Ne => ip.same(&other),
                Op::Contains => ip.contains(&other),
                Op::Lt | Op::Gt => false,
            }
        }
        Value::Eth(e) => {
            let Some(other) = o.eth else {
                return false;
            };
            match op {
                Op::Eq | Op::Ne => *e == other,
                Op::Contains => e.contains(&other),
                Op::Lt | Op::Gt => false,
            }
        }
        Value::Field(f) => {
            let name = f.field;
            match op {
                Op::Contains => o.text.contains(name) || name.contains(o.text.as_str()),
                _ => cmp_ord(name, op, o.text.split('[').next().unwrap_or("")),
            }
        }
        // `output=2` reads as `output.port=2`: a one-key object compares by its value.
        Value::Map(items) if items.len() == 1 => compare(&items[0].value, op, o),
        Value::Array(items) => items.iter().any(|v| compare(v, op, o)),
        Value::Map(_) | Value::List(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Op(Op),
    Word,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    text: String,
    column: usize,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '=' | '<' | '>' | '~' | '&' | '|') && c != '!'
}

fn lex(s: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let column = at + 1;
        let two: String = chars[i..].iter().take(2).map(|(_, c)| *c).collect();
        let push = |out: &mut Vec<Token>, kind: Tok, text: &str| {
            out.push(Token {
                kind,
                text: text.to_owned(),
                column,
            })
        };
        if c.is_whitespace() {
            i += 1;
        } else if two == "&&" {
            push(&mut out, Tok::And, "&&");
            i += 2;
        } else if two == "||" {
            push(&mut out, Tok::Or, "||");
            i += 2;
        } else if two == "!=" {
            push(&mut out, Tok::Op(Op::Ne), "!=");
            i += 2;
        } else if two == "~=" {
            push(&mut out, Tok::Op(Op::Contains), "~=");
            i += 2;
        } else if c == '!' {
            push(&mut out, Tok::Not, "!");
            i += 1;
        } else if c == '(' {
            push(&mut out, Tok::LParen, "(");
            i += 1;
        } else if c == ')' {
            push(&mut out, Tok::RParen, ")");
            i += 1;
        } else if c == '=' {
            push(&mut out, Tok::Op(Op::Eq), "=");
            i += 1;
        } else if c == '<' {
            push(&mut out, Tok::Op(Op::Lt), "<");
            i += 1;
        } else if c == '>' {
            push(&mut out, Tok::Op(Op::Gt), ">");
            i += 1;
        } else if is_word_char(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i].1) {
                i += 1;
            }
            let word: String = chars[start..i].iter().map(|(_, c)| *c).collect();
            let kind = match word.as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                _ => Tok::Word,
            };
            push(&mut out, kind, &word);
        } else {
            return Err(FilterError::Unexpected {
                found: c.to_string(),
                column,
                expected: "a clause",
            });
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// `(` and `not` entered and not yet left.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn unexpected(&self, expected: &'static str) -> FilterError {
        match self.tokens.get(self.pos) {
            Some(t) => FilterError::Unexpected {
                found: t.text.clone(),
                column: t.column,
                expected,
            },
            None => FilterError::End { expected },
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::Or(items)
        })
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut items = vec![self.not()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Filter::And(items)
        })
    }

    /// Enters one level of `(` or `not`, or refuses past [`MAX_FILTER_DEPTH`].
    fn descend(&mut self) -> Result<(), FilterError> {
        if self.depth >= MAX_FILTER_DEPTH {
            crate::limits::exceeded("flow_filter_depth");
            let column = self.tokens.get(self.pos).map_or(0, |t| t.column);
            return Err(FilterError::TooDeep { column });
        }
        self.depth += 1;
        Ok(())
    }

    fn not(&mut self) -> Result<Filter, FilterError> {
        if self.peek() == Some(&Tok::Not) {
            self.descend()?;
            self.pos += 1;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, FilterError> {
        match self.peek() {
            Some(Tok::LParen) => {
                self.descend()?;
                self.pos += 1;
                let f = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.unexpected("`)`"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(f)
            }
            Some(Tok::Word) => {
                let key = self.tokens[self.pos].text.clone();
                self.pos += 1;
                let test = if let Some(Tok::Op(op)) = self.peek() {
                    let op = *op;
                    self.pos += 1;
                    if self.peek() != Some(&Tok::Word) {
                        return Err(self.unexpected("a value"));
                    }
                    let value = self.tokens[self.pos].text.clone();
                    self.pos += 1;
                    Some((op, Operand::new(&value)))
                } else {
                    None
                };
                Ok(Filter::Clause(Box::new(Clause {
                    path: key.split('.').map(str::to_owned).collect(),
                    key,
                    test,
                })))
            }
            _ => Err(self.unexpected("a clause or `(`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::parse::parse_line;

    const LINES: &[&str] = &[
        " cookie=0x1, duration=1.5s, table=0, n_packets=10, n_bytes=1000, priority=100,ip,nw_src=10.0.0.1 actions=output:2",
        " cookie=0x2, duration=2s, table=1, n_packets=0, n_bytes=0, priority=50,ip,nw_src=10.0.0.0/24,reg0=0x5/0xff actions=ct(commit,zone=5),resubmit(,3)",
        " cookie=0x3, duration=3s, table=1, n_packets=3, n_bytes=300, priority=10,tcp,tp_dst=80,dl_src=02:00:00:00:00:01 actions=NORMAL",
        " cookie=0x4, duration=4s, table=2, n_packets=0, n_bytes=0, priority=0 actions=drop",
    ];

    fn run(expr: &str) -> Vec<u128> {
        let f = match Filter::parse(expr) {
            Ok(f) => f,
            Err(e) => panic!("{expr}: {e}"),
        };
        LINES
            .iter()
            .map(|l| parse_line(l, 1).expect("fixture parses"))
            .filter(|fl| f.matches(fl))
            .map(|fl| fl.cookie())
            .collect()
    }

    #[test]
    fn issue_example() {
        assert_eq!(run("nw_src=10.0.0.1 and n_packets>0"), vec![1]);
    }

    #[test]
    fn operators_on_each_kind() {
        assert_eq!(run("n_packets>0"), vec![1, 3]);
        assert_eq!(run("n_packets<5"), vec![2, 3, 4]);
        assert_eq!(run("table=1"), vec![2, 3]);
        assert_eq!(run("table!=1"), vec![1, 4]);
        assert_eq!(run("priority>40"), vec![1, 2]);
        assert_eq!(run("duration>1.9"), vec![2, 3, 4]);
        assert_eq!(run("cookie=0x3"), vec![3]);
        // Subnets: the flow's network contains the address.
        assert_eq!(run("nw_src~=10.0.0.7"), vec![2]);
        assert_eq!(run("nw_src~=10.0.0.1"), vec![1, 2]);
        assert_eq!(run("nw_src=10.0.0.0/24"), vec![2]);
        assert_eq!(run("nw_src=10.0.0.0/255.255.255.0"), vec![2]);
        // Masks: equality is value and mask; ~= is "matches under the mask".
        assert_eq!(run("reg0=0x5/0xff"), vec![2]);
        assert_eq!(run("reg0=0x5"), Vec::<u128>::new());
        assert_eq!(run("reg0~=0x105"), vec![2]);
        assert_eq!(run("tp_dst=80"), vec![3]);
        assert_eq!(run("dl_src=02:00:00:00:00:01"), vec![3]);
        assert_eq!(run("ip"), vec![1, 2]);
        assert_eq!(run("drop"), vec![4]);
    }

    #[test]
    fn actions_and_nesting() {
        assert_eq!(run("output.port=2"), vec![1]);
        assert_eq!(run("output=NORMAL"), vec![3]);
        assert_eq!(run("ct.zone=5"), vec![2]);
        assert_eq!(run("resubmit.table=3"), vec![2]);
        assert_eq!(run("ct"), vec![2]);
    }

    #[test]
    fn boolean_structure() {
        assert_eq!(run("not ip"), vec![3, 4]);
        assert_eq!(run("!ip && n_packets>0"), vec![3]);
        assert_eq!(run("table=0 or table=2"), vec![1, 4]);
        assert_eq!(run("(table=0 || table=2) and not drop"), vec![1]);
        // `not` binds tighter than `and`, `and` tighter than `or`.
        assert_eq!(run("table=2 or table=1 and n_packets>0"), vec![3, 4]);
        assert_eq!(run("not table=1 and n_packets>0"), vec![1]);
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(
            Filter::parse("nw_src= and x"),
            Err(FilterError::Unexpected {
                found: "and".into(),
                column: 9,
                expected: "a value"
            })
        );
        assert_eq!(
            Filter::parse("(ip"),
            Err(FilterError::End { expected: "`)`" })
        );
        assert!(Filter::parse("ip ip").is_err());
        assert!(Filter::parse("").is_err());
    }

    #[test]
    fn deep_or_long_filters_are_refused_not_overflowing_the_stack() {
        let ok = format!(
            "{}ip{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(Filter::parse(&ok).is_ok());
        let before = crate::limits::count("flow_filter_depth");
        let deep = format!("{}ip{}", "(".repeat(1500), ")".repeat(1500));
        assert!(matches!(
            Filter::parse(&deep),
            Err(FilterError::TooDeep { column: 65 })
        ));
        let nots = "not ".repeat(1000) + "ip";
        assert!(matches!(
            Filter::parse(&nots),
            Err(FilterError::TooDeep { .. })
        ));
        assert!(crate::limits::count("flow_filter_depth") >= before + 2);
        // Depth is what is open at once, not how many levels appear in all.
        let wide = vec!["(not ip)"; 200].join(" or ");
        assert!(Filter::parse(&wide).is_ok());
        let long = "ip or ".repeat(1000) + "ip";
        assert_eq!(
            Filter::parse(&long),
            Err(FilterError::TooLong { len: long.len() })
        );
    }
}

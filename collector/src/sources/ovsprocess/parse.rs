//! Pure parsers of the procfs files the `ovsprocess` source reads: `/proc/PID/stat`,
//! `/proc/PID/status`, `/proc/PID/limits` and `/proc/stat` (proc(5)). Every function returns a
//! [`ParseError`] on anything unexpected (truncated, non-numeric, out of range), never panics.

/// What can be wrong with a procfs file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{file}: no {field}")]
    Missing {
        file: &'static str,
        field: &'static str,
    },
    #[error("{file}: {field} is not a number in range: {value:?}")]
    BadNumber {
        file: &'static str,
        field: &'static str,
        value: String,
    },
    #[error("{file}: {reason}")]
    Malformed {
        file: &'static str,
        reason: &'static str,
    },
}

fn number(file: &'static str, field: &'static str, value: &str) -> Result<u64, ParseError> {
    // `u64::from_str` accepts a leading `+`; procfs never writes one.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(file, field, value));
    }
    value.parse().map_err(|_| bad(file, field, value))
}

fn bad(file: &'static str, field: &'static str, value: &str) -> ParseError {
    ParseError::BadNumber {
        file,
        field,
        value: value.chars().take(64).collect(),
    }
}

/// The figures of `/proc/PID/stat` the source serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Field 2 without its parentheses (the kernel's `comm`, at most 15 bytes, any bytes but NUL).
    pub comm: String,
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead)…
    pub state: char,
    /// Field 14: user-mode CPU time, in clock ticks.
    pub utime: u64,
    /// Field 15: kernel-mode CPU time, in clock ticks.
    pub stime: u64,
    /// Field 20.
    pub num_threads: u64,
    /// Field 22: start time after boot, in clock ticks.
    pub starttime: u64,
    /// Field 23: virtual memory size, in bytes.
    pub vsize: u64,
}

/// `/proc/PID/stat`. `comm` is in parentheses and may itself contain spaces and `)`, so it ends
/// at the line's *last* `)`; the fields after it are split on spaces.
pub fn stat(text: &str) -> Result<Stat, ParseError> {
    const F: &str = "stat";
    let open = text.find('(').ok_or(ParseError::Malformed {
        file: F,
        reason: "no '(' before comm",
    })?;
    let close = text.rfind(')').ok_or(ParseError::Malformed {
        file: F,
        reason: "no ')' after comm",
    })?;
    if close < open {
        return Err(ParseError::Malformed {
            file: F,
            reason: "')' before '('",
        });
    }
    number(F, "pid", text[..open].trim_end())?;
    let comm = text[open + 1..close].to_owned();
    // Fields 3.. : index i is field i + 3.
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize, name: &'static str| -> Result<u64, ParseError> {
        let v = rest.get(n - 3).ok_or(ParseError::Missing {
            file: F,
            field: name,
        })?;
        number(F, name, v)
    };
    let state = match rest.first().map(|s| s.as_bytes()) {
        Some(&[b]) if b.is_ascii_alphabetic() => char::from(b),
        _ => {
            return Err(ParseError::Malformed {
                file: F,
                reason: "no one-letter state after comm",
            });
        }
    };
    Ok(Stat {
        comm,
        state,
        utime: field(14, "utime")?,
        stime: field(15, "stime")?,
        num_threads: field(20, "num_threads")?,
        starttime: field(22, "starttime")?,
        vsize: field(23, "vsize")?,
    })
}

impl Stat {
    /// A zombie (exited, not reaped yet) or dead task.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The figures of `/proc/PID/status` the source serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `Threads:`.
    pub threads: u64,
    /// `VmRSS:` in bytes; a zombie has none.
    pub vm_rss: Option<u64>,
}

/// `/proc/PID/status`: `Threads:` (required) and `VmRSS:` (`NNN kB`, optional).
pub fn status(text: &str) -> Result<Status, ParseError> {
    const F: &str = "status";
    let mut threads = None;
    let mut vm_rss = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Threads" => threads = Some(number(F, "Threads", value)?),
            "VmRSS" => {
                let kb = value
                    .strip_suffix(" kB")
                    .ok_or_else(|| bad(F, "VmRSS", value))?
                    .trim();
                let kb = number(F, "VmRSS", kb)?;
                vm_rss = Some(kb.checked_mul(1024).ok_or_else(|| bad(F, "VmRSS", value))?);
            }
            _ => {}
        }
    }
    Ok(Status {
        threads: threads.ok_or(ParseError::Missing {
            file: F,
            field: "Threads",
        })?,
        vm_rss,
    })
}

/// `/proc/PID/limits`: the soft limit of `Max open files`; `None` when it is `unlimited`.
pub fn max_open_files(text: &str) -> Result<Option<u64>, ParseError> {
    const F: &str = "limits";
    const NAME: &str = "Max open files";
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(NAME))
        .ok_or(ParseError::Missing {
            file: F,
            field: NAME,
        })?;
    let soft = line
        .split_ascii_whitespace()
        .next()
        .ok_or(ParseError::Missing {
            file: F,
            field: "Max open files soft limit",
        })?;
    if soft == "unlimited" {
        return Ok(None);
    }
    number(F, NAME, soft).map(Some)
}

/// `/proc/stat`: `btime`, the boot time in seconds since the Unix epoch.
pub fn btime(text: &str) -> Result<u64, ParseError> {
    const F: &str = "/proc/stat";
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .ok_or(ParseError::Missing {
            file: F,
            field: "btime",
        })?;
    number(F, "btime", v.trim())
}

/// `/proc/PID/comm` without its newline.
pub fn comm(text: &str) -> &str {
    text.strip_suffix('\n').unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ovsprocess/proc"
    );

    fn fixture(rel: &str) -> String {
        std::fs::read_to_string(format!("{FIX}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    // Captured from a real ovs-vswitchd (pid 19628) and ovsdb-server (pid 19625) on this host;
    // the expected values are those `ps -o pid,lstart,nlwp` and the files themselves showed.
    #[test]
    fn real_vswitchd_stat() {
        let s = stat(&fixture("19628/stat")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s,
            Stat {
                comm: "ovs-vswitchd".into(),
                state: 'S',
                utime: 0,
                stime: 2,
                num_threads: 6,
                starttime: 44486,
                vsize: 403_124_224,
            }
        );
    }

    #[test]
    fn real_ovsdb_server_stat_status_limits() {
        let s = stat(&fixture("19625/stat")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.comm, "ovsdb-server");
        assert_eq!((s.num_threads, s.starttime), (1, 44484));
        assert_eq!(s.vsize, 15_859_712);
        let st = status(&fixture("19625/status")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(st.threads, 1);
        assert_eq!(st.vm_rss, Some(6936 * 1024));
        assert_eq!(max_open_files(&fixture("19625/limits")), Ok(Some(20000)));
        assert_eq!(comm(&fixture("19625/comm")), "ovsdb-server");
    }

    #[test]
    fn real_vswitchd_status_limits_and_btime() {
        let st = status(&fixture("19628/status")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            st,
            Status {
                threads: 6,
                vm_rss: Some(17736 * 1024)
            }
        );
        assert_eq!(max_open_files(&fixture("19628/limits")), Ok(Some(20000)));
        assert_eq!(btime(&fixture("stat")), Ok(1_796_409_489));
        assert_eq!(comm(&fixture("19628/comm")), "ovs-vswitchd");
    }

    const TAIL: &str = "S 1 2 3 0 -1 4194624 2630 0 2 0 7 9 0 0 20 0 6 0 44486 403124224 4386 0";

    #[test]
    fn comm_with_parentheses_and_spaces_ends_at_the_last_paren() {
        let s = stat(&format!("42 (a) (b ) c)) {TAIL}\n")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.comm, "a) (b ) c)");
        assert_eq!((s.utime, s.stime, s.num_threads), (7, 9, 6));
        let s = stat(&format!("42 () {TAIL}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.comm, "");
    }

    #[test]
    fn hostile_stat_is_an_error() {
        for text in [
            "",
            "42",
            "42 (ovs",
            "42 ovs) S 1",
            ") 42 (",
            "x (ovs) S 1 2 3",
            "-1 (ovs) S",
            "42 (ovs) SS 1 2 3 0 -1 4194624 2630 0 2 0 7 9 0 0 20 0 6 0 44486 1 4386",
            "42 (ovs) 1 2 3 0 -1 4194624 2630 0 2 0 7 9 0 0 20 0 6 0 44486 1 4386 5",
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 7", // truncated before stime
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 x 9 0 0 20 0 6 0 44486 1 4386",
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 -7 9 0 0 20 0 6 0 44486 1 4386",
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 +7 9 0 0 20 0 6 0 44486 1 4386",
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 7 9 0 0 20 0 6 0 18446744073709551616 1 4386",
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 7 9 0 0 20 0 6 0 44486 99999999999999999999999 1",
        ] {
            assert!(stat(text).is_err(), "{text:?} parsed");
        }
        // The largest u64 is a number, not an overflow.
        let max = u64::MAX;
        let s = stat(&format!(
            "42 (ovs) S 1 2 3 0 -1 4194624 2630 0 2 0 {max} {max} 0 0 20 0 6 0 {max} {max} 1"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.utime, s.starttime, s.vsize), (max, max, max));
    }

    #[test]
    fn hostile_status_limits_btime_are_errors() {
        for text in [
            "",
            "Name:\tovs\n",
            "Threads:\tsix\n",
            "Threads:\t-6\n",
            "Threads:\t99999999999999999999999\n",
            "Threads:\t6\nVmRSS:\t12 MB\n",
            "Threads:\t6\nVmRSS:\t kB\n",
            // kB that overflow u64 once multiplied by 1024.
            "Threads:\t6\nVmRSS:\t18446744073709551615 kB\n",
        ] {
            assert!(status(text).is_err(), "{text:?} parsed");
        }
        assert_eq!(
            status("Threads:\t6\n"),
            Ok(Status {
                threads: 6,
                vm_rss: None
            })
        );
        for text in [
            "",
            "Max open files\n",
            "Max open files            lots  20000 files\n",
            "Max open files            -1  20000 files\n",
            "Max open files            99999999999999999999999  1 files\n",
        ] {
            assert!(max_open_files(text).is_err(), "{text:?} parsed");
        }
        assert_eq!(
            max_open_files("Max open files            unlimited  unlimited  files\n"),
            Ok(None)
        );
        for text in ["", "btime\n", "btime x\n", "btime -1\n", "cpu 1 2\n"] {
            assert!(btime(text).is_err(), "{text:?} parsed");
        }
    }
}

//! Boots the guest under `qemu-system-x86_64 -accel tcg` and follows its serial console.

use anyhow::{Context, Result};
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Boot<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    /// Appended to the kernel command line.
    pub cmdline: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub timeout: Duration,
    /// Every console line goes here.
    pub log: &'a Path,
}

pub struct Console {
    pub lines: Vec<String>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Boots and returns the console's lines once the guest powers off (or the timeout kills it).
/// Lines are echoed to stderr as they come, except those `quiet` says to keep quiet.
pub fn boot(b: &Boot<'_>, quiet: impl Fn(&str) -> bool) -> Result<Console> {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max"])
        .args(["-m", &b.memory_mib.to_string(), "-smp", &b.cpus.to_string()])
        .args([
            "-nographic",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
        ])
        // One PCI NIC (no SR-IOV in QEMU 7.2's models) for the SR-IOV source's netlink dump;
        // its link stays down and its user-mode backend is cut off from the host.
        .args([
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "e1000,netdev=n0",
        ])
        .arg("-kernel")
        .arg(b.kernel)
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 rdinit=/init {}",
            b.cmdline
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let out = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut log = std::fs::File::create(b.log).with_context(|| format!("{}", b.log.display()))?;
    let mut lines = Vec::new();
    let deadline = start + b.timeout;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                let clean = strip_escapes(&line);
                let _ = writeln!(log, "{clean}");
                if !quiet(&clean) {
                    eprintln!("  | {clean}");
                }
                lines.push(clean);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() >= deadline {
                    timed_out = true;
                    eprintln!(
                        "lab: the guest did not finish within {:?}; stopping it",
                        b.timeout
                    );
                    let _ = child.kill();
                    break;
                }
            }
        }
    }
    let _ = child.wait();
    let _ = reader.join();
    Ok(Console {
        lines,
        timed_out,
        elapsed: start.elapsed(),
    })
}

/// The line without terminal escape sequences (the firmware clears the screen) and control
/// characters.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: parameters, then one final byte in @..~; otherwise a two-character
            // sequence (ESC c: reset), already consumed.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            super::strip_escapes("\u{1b}c\u{1b}[?7l\u{1b}[2JSeaBIOS\r"),
            "SeaBIOS"
        );
    }
}

//! A sysfs tree stored as text, unpacked into a directory: the fixtures of the SR-IOV tests
//! (like node_exporter's `sys.ttar`), kept readable in review and in `git diff`.
//!
//! One entry per line; `#` starts a comment line; paths are relative to the target directory:
//!
//! ```text
//! d PATH               a directory (parents are made as needed)
//! f PATH CONTENT       a file holding CONTENT and a newline (sysfs files end with one)
//! l PATH -> TARGET     a symlink to TARGET (relative, as sysfs's are)
//! ```

use std::path::{Component, Path};

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: &'static str },
    #[error("line {line}: cannot create {path}")]
    Create {
        line: usize,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn safe(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Creates the tree described by `text` under `root`.
pub fn unpack(text: &str, root: &Path) -> Result<(), TreeError> {
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (kind, rest) = l.split_at(1);
        let rest = rest.strip_prefix(' ').ok_or(TreeError::Syntax {
            line,
            reason: "expected a kind letter (d, f, l) and a space",
        })?;
        let create = |path: &str, source| TreeError::Create {
            line,
            path: path.to_owned(),
            source,
        };
        match kind {
            "d" => {
                if !safe(rest) {
                    return Err(TreeError::Syntax {
                        line,
                        reason: "path must be relative, without ..",
                    });
                }
                std::fs::create_dir_all(root.join(rest)).map_err(|e| create(rest, e))?;
            }
            "f" => {
                let (path, content) = rest.split_once(' ').unwrap_or((rest, ""));
                if !safe(path) {
                    return Err(TreeError::Syntax {
                        line,
                        reason: "path must be relative, without ..",
                    });
                }
                let full = root.join(path);
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| create(path, e))?;
                }
                std::fs::write(&full, format!("{content}\n")).map_err(|e| create(path, e))?;
            }
            "l" => {
                let (path, target) = rest.split_once(" -> ").ok_or(TreeError::Syntax {
                    line,
                    reason: "a link is `l PATH -> TARGET`",
                })?;
                if !safe(path) {
                    return Err(TreeError::Syntax {
                        line,
                        reason: "path must be relative, without ..",
                    });
                }
                let full = root.join(path);
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| create(path, e))?;
                }
                std::os::unix::fs::symlink(target, &full).map_err(|e| create(path, e))?;
            }
            _ => {
                return Err(TreeError::Syntax {
                    line,
                    reason: "unknown kind (d, f or l)",
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_and_refuses_escapes() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let text = "# c\nd a/b\nf a/b/x 0x020000\nl a/y -> b/x\n";
        unpack(text, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let read = std::fs::read_to_string(tmp.path().join("a/y")).unwrap_or_default();
        assert_eq!(read, "0x020000\n");
        assert!(matches!(
            unpack("f ../x 1\n", tmp.path()),
            Err(TreeError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            unpack("\nq a\n", tmp.path()),
            Err(TreeError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            unpack("l a/z\n", tmp.path()),
            Err(TreeError::Syntax { line: 1, .. })
        ));
    }
}

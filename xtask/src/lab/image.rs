//! The guest's root file system, assembled in memory and written as an uncompressed `newc` cpio
//! archive (the kernel unpacks it into its initramfs; no compression, so nothing to inflate
//! under emulation).
//!
//! Host files are copied to the same path with the symlinks on the way kept (Debian's merged
//! `/usr`, `update-alternatives`), and dynamic executables bring the libraries `ldd` lists, the
//! loader included.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

enum Entry {
    Dir,
    File { mode: u32, data: Data },
    Symlink(PathBuf),
    CharDev { major: u32, minor: u32 },
}

enum Data {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

/// A file system tree keyed by absolute guest path.
#[derive(Default)]
pub struct Image {
    entries: BTreeMap<PathBuf, Entry>,
    /// Host binaries whose libraries were already added.
    linked: BTreeSet<PathBuf>,
}

fn rel(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

impl Image {
    pub fn new() -> Image {
        Image::default()
    }

    pub fn dir(&mut self, path: impl AsRef<Path>) {
        let mut cur = PathBuf::new();
        for c in rel(path.as_ref()).components() {
            cur.push(c);
            self.entries.entry(cur.clone()).or_insert(Entry::Dir);
        }
    }

    fn parent(&mut self, path: &Path) {
        if let Some(p) = rel(path).parent()
            && !p.as_os_str().is_empty()
        {
            self.dir(p);
        }
    }

    pub fn symlink(&mut self, path: impl AsRef<Path>, target: impl AsRef<Path>) {
        let path = path.as_ref();
        self.parent(path);
        self.entries
            .insert(rel(path), Entry::Symlink(target.as_ref().to_owned()));
    }

    pub fn bytes(&mut self, path: impl AsRef<Path>, mode: u32, data: impl Into<Vec<u8>>) {
        let path = path.as_ref();
        self.parent(path);
        self.entries.insert(
            rel(path),
            Entry::File {
                mode,
                data: Data::Bytes(data.into()),
            },
        );
    }

    pub fn char_dev(&mut self, path: impl AsRef<Path>, major: u32, minor: u32) {
        let path = path.as_ref();
        self.parent(path);
        self.entries
            .insert(rel(path), Entry::CharDev { major, minor });
    }

    /// A host file at guest path `to` (contents read when the archive is written).
    pub fn host_file_as(&mut self, from: &Path, to: impl AsRef<Path>) -> Result<()> {
        let meta = std::fs::metadata(from).with_context(|| format!("{}", from.display()))?;
        let to = to.as_ref();
        self.parent(to);
        self.entries.insert(
            rel(to),
            Entry::File {
                mode: meta.permissions().mode() & 0o7777,
                data: Data::Host(from.to_owned()),
            },
        );
        Ok(())
    }

    /// Copies the host path `path` to the same guest path, recreating every symlink met on the
    /// way (a symlinked directory, a symlinked file, chains of them).
    pub fn host_path(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if !path.is_absolute() {
            bail!("{} is not absolute", path.display());
        }
        let mut cur = PathBuf::from("/");
        let comps: Vec<_> = rel(path)
            .components()
            .map(|c| c.as_os_str().to_owned())
            .collect();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let meta = std::fs::symlink_metadata(&cur)
                .with_context(|| format!("{} (for {})", cur.display(), path.display()))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&cur)?;
                self.symlink(&cur, &target);
                let resolved = cur.parent().unwrap_or(Path::new("/")).join(&target);
                let mut rest = resolved;
                for c in &comps[i + 1..] {
                    rest.push(c);
                }
                return self.host_path(normalize(&rest));
            }
            if i + 1 == comps.len() {
                if meta.is_dir() {
                    self.dir(&cur);
                } else {
                    self.host_file_as(&cur, &cur)?;
                }
            }
        }
        Ok(())
    }

    /// A host executable at its own path plus, if it is dynamic, its libraries and loader.
    pub fn host_binary(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.host_path(path)?;
        self.libraries_of(path)
    }

    /// The libraries of a host ELF file (nothing for a static one).
    pub fn libraries_of(&mut self, path: &Path) -> Result<()> {
        let real = std::fs::canonicalize(path)?;
        if !self.linked.insert(real.clone()) {
            return Ok(());
        }
        let out = Command::new("ldd")
            .arg(&real)
            .output()
            .context("cannot run ldd")?;
        // ldd exits 1 for a static executable ("not a dynamic executable").
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if line.contains("not found") {
                bail!("{}: library missing on the host: {line}", path.display());
            }
            let lib = match line.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
                self.host_path(lib)?;
            }
        }
        Ok(())
    }

    /// Writes the archive.
    pub fn write_cpio(&self, out: &Path) -> Result<u64> {
        let f = std::fs::File::create(out).with_context(|| format!("{}", out.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut total = 0u64;
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let name = path.to_string_lossy();
            let (mode, data, rdev): (u32, Vec<u8>, (u32, u32)) = match entry {
                Entry::Dir => (0o040_755, Vec::new(), (0, 0)),
                Entry::Symlink(t) => (
                    0o120_777,
                    t.to_string_lossy().into_owned().into_bytes(),
                    (0, 0),
                ),
                Entry::CharDev { major, minor } => (0o020_600, Vec::new(), (*major, *minor)),
                Entry::File { mode, data } => {
                    let bytes = match data {
                        Data::Bytes(b) => b.clone(),
                        Data::Host(p) => {
                            std::fs::read(p).with_context(|| format!("{}", p.display()))?
                        }
                    };
                    (0o100_000 | mode, bytes, (0, 0))
                }
            };
            total += write_entry(&mut w, &name, ino, mode, rdev, &data)?;
        }
        total += write_entry(&mut w, "TRAILER!!!", 0, 0, (0, 0), &[])?;
        w.flush()?;
        Ok(total)
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

fn pad4(w: &mut impl std::io::Write, len: u64) -> Result<u64> {
    let pad = (4 - (len % 4)) % 4;
    w.write_all(&[0u8; 3][..pad as usize])?;
    Ok(pad)
}

fn write_entry(
    w: &mut impl std::io::Write,
    name: &str,
    ino: u32,
    mode: u32,
    rdev: (u32, u32),
    data: &[u8],
) -> Result<u64> {
    let namesize = name.len() + 1;
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime: fixed, so the archive only changes when its contents do
        data.len(),
        0,
        0,
        rdev.0,
        rdev.1,
        0,
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    let mut n = 110 + namesize as u64;
    n += pad4(w, n)?;
    w.write_all(data)?;
    n += data.len() as u64;
    n += pad4(w, n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_is_what_cpio_reads() -> Result<()> {
        let dir = tempfile_dir()?;
        let mut img = Image::new();
        img.bytes("/etc/hello", 0o644, "hi\n");
        img.symlink("/bin", "usr/bin");
        img.dir("/usr/bin");
        img.char_dev("/dev/console", 5, 1);
        let out = dir.join("x.cpio");
        img.write_cpio(&out)?;
        let listing = Command::new("cpio")
            .args(["-t", "-v", "-F"])
            .arg(&out)
            .output();
        // cpio(1) is optional on the host; the format check is what matters when it is there.
        if let Ok(o) = listing
            && o.status.success()
        {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("etc/hello"), "{text}");
            assert!(text.contains("bin -> usr/bin"), "{text}");
            assert!(text.contains("dev/console"), "{text}");
        }
        let bytes = std::fs::read(&out)?;
        assert_eq!(bytes.len() % 4, 0);
        assert!(bytes.starts_with(b"070701"));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn tempfile_dir() -> Result<PathBuf> {
        let d = std::env::temp_dir().join(format!("dpc-lab-image-{}", std::process::id()));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(
            normalize(Path::new("/usr/sbin/../lib/x")),
            PathBuf::from("/usr/lib/x")
        );
    }
}

//! Debian's stock kernel: resolved through `apt-cache depends linux-image-amd64`, fetched with
//! `apt-get download`, unpacked with `dpkg-deb -x` into `.lab-cache/kernel/<package>/`, indexed
//! with `depmod`; and the modules a scenario needs, in load order, from `modprobe
//! --show-depends` against that tree.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Kernel {
    /// `6.1.0-56-amd64`.
    pub version: String,
    /// The unpacked package (`boot/`, `lib/modules/<version>/`).
    pub root: PathBuf,
}

/// One `insmod` line of `modprobe --show-depends`: the module file (relative to the modules
/// directory) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLoad {
    pub name: String,
    pub file: PathBuf,
    pub params: String,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.version))
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.version)
    }

    /// The modules to load for `name`, dependencies first.
    pub fn show_depends(&self, name: &str) -> Result<Vec<ModuleLoad>> {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(&self.root)
            .args(["-S", &self.version, "--show-depends", name])
            .output()
            .context("cannot run modprobe (apt-get install kmod)")?;
        if !out.status.success() {
            bail!(
                "modprobe --show-depends {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        parse_show_depends(&String::from_utf8_lossy(&out.stdout), &self.modules_dir())
    }
}

/// Parses `insmod /path/to/x.ko params` and `builtin x` lines.
pub fn parse_show_depends(text: &str, modules_dir: &Path) -> Result<Vec<ModuleLoad>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("builtin ") {
            continue;
        }
        let Some(rest) = line.strip_prefix("insmod ") else {
            bail!("unexpected modprobe output: {line}");
        };
        let (path, params) = rest.split_once(' ').unwrap_or((rest, ""));
        let path = Path::new(path);
        let file = path
            .strip_prefix(modules_dir)
            .with_context(|| format!("{} is outside {}", path.display(), modules_dir.display()))?
            .to_owned();
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next())
            .context("module file name")?
            .replace('-', "_");
        out.push(ModuleLoad {
            name,
            file,
            params: params.trim().to_owned(),
        });
    }
    Ok(out)
}

fn run_quiet(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `linux-image-6.1.0-56-amd64`, from the metapackage's dependency.
fn resolve_package() -> Result<String> {
    let parse = |text: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .map(str::trim)
            .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
            .map(str::to_owned)
    };
    let first = run_quiet(Command::new("apt-cache").args(["depends", "linux-image-amd64"]));
    if let Ok(text) = &first
        && let Some(p) = parse(text)
    {
        return Ok(p);
    }
    // A fresh machine has no package lists yet.
    eprintln!("lab: apt-get update (no package lists for linux-image-amd64)");
    run_quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    let text = run_quiet(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    parse(&text).context("apt-cache depends linux-image-amd64 names no linux-image-*-amd64")
}

/// The kernel, downloaded and unpacked once into `cache`.
pub fn ensure(cache: &Path) -> Result<Kernel> {
    let kernels = cache.join("kernel");
    std::fs::create_dir_all(&kernels)?;
    let package = match resolve_package() {
        Ok(p) => p,
        Err(e) => {
            // Offline but cached: use what is there.
            let cached = std::fs::read_dir(&kernels)?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join(".complete").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .max();
            match cached {
                Some(p) => {
                    eprintln!("lab: cannot resolve the kernel package ({e:#}); using cached {p}");
                    p
                }
                None => return Err(e),
            }
        }
    };
    let version = package
        .strip_prefix("linux-image-")
        .context("package name")?
        .to_owned();
    let dir = kernels.join(&package);
    let root = dir.join("root");
    let kernel = Kernel {
        version,
        root: root.clone(),
    };
    if dir.join(".complete").exists() {
        return Ok(kernel);
    }
    eprintln!("lab: fetching {package}");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    run_quiet(
        Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(&dir),
    )?;
    let deb = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    run_quiet(
        Command::new("depmod")
            .arg("-b")
            .arg(&root)
            .arg(&kernel.version),
    )?;
    if !kernel.vmlinuz().exists() {
        bail!("{} has no {}", package, kernel.vmlinuz().display());
    }
    // The .deb is not needed once unpacked, nor are kernels Debian has since replaced.
    let _ = std::fs::remove_file(&deb);
    std::fs::write(dir.join(".complete"), &package)?;
    for old in std::fs::read_dir(&kernels)?.filter_map(|e| e.ok()) {
        if old.file_name().to_string_lossy() != package {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_depends_lines() -> Result<()> {
        let dir = Path::new("/c/root/lib/modules/6.1.0-56-amd64");
        let text = "insmod /c/root/lib/modules/6.1.0-56-amd64/kernel/lib/libcrc32c.ko \n\
                    builtin crc32c\n\
                    insmod /c/root/lib/modules/6.1.0-56-amd64/kernel/arch/x86/crypto/crc32c-intel.ko \n\
                    insmod /c/root/lib/modules/6.1.0-56-amd64/kernel/drivers/net/dummy.ko numdummies=0 \n";
        let m = parse_show_depends(text, dir)?;
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "libcrc32c");
        assert_eq!(m[1].name, "crc32c_intel");
        assert_eq!(m[2].params, "numdummies=0");
        assert_eq!(m[2].file, PathBuf::from("kernel/drivers/net/dummy.ko"));
        assert!(parse_show_depends("rmmod x", dir).is_err());
        Ok(())
    }
}

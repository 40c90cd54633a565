use clap::Parser;
use dataplane_collector::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    tune_malloc();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Flows(flows)) => {
            dataplane_collector::flows::run(flows)?;
            return Ok(());
        }
        Some(Command::Top(top)) => {
            dataplane_collector::top::run(top)?;
            return Ok(());
        }
        Some(Command::Probe(probe)) => {
            let report = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(dataplane_collector::probe(probe))?;
            print!("{report}");
            return Ok(());
        }
        _ => {}
    }
    let Some(args) = cli.into_serve_args() else {
        anyhow::bail!("unknown subcommand");
    };
    dataplane_collector::init_logging(args.log_format, &args.log_level);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()?
        .block_on(dataplane_collector::serve(args))?;
    Ok(())
}

/// A scrape of a 100k-flow table needs tens of MB for a moment. With glibc's default, buffers
/// that size end up in per-thread arenas after the first one is freed, and stay resident at the
/// high-water mark of every thread that ever scraped. A fixed mmap threshold sends every buffer
/// over 256 KiB straight to the kernel and back when the scrape ends (BENCHMARKS.md has the
/// numbers).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "mallopt takes two integers and touches no Rust memory"
)]
fn tune_malloc() {
    // SAFETY: mallopt only changes glibc allocator parameters; nothing else runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

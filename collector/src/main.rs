use clap::Parser;
use dataplane_collector::cli::Cli;

fn main() -> anyhow::Result<()> {
    let args = Cli::parse().serve_args();
    dataplane_collector::init_logging(args.log_format, &args.log_level);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()?
        .block_on(dataplane_collector::serve(args))?;
    Ok(())
}

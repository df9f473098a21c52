//! `tessera-edge`: serve the Spin application in `spin.toml` (or `EDGE_MANIFEST`) on
//! `EDGE_ADDR` (default 127.0.0.1:3000, like `spin up`), and `/metrics` on `EDGE_METRICS_ADDR`
//! (default 127.0.0.1:3001), until SIGTERM or Ctrl-C.

use tessera_edge::{EdgeHost, HostConfig};

/// mimalloc instead of the system allocator: every request builds and drops a store, its
/// resource table, headers and bodies; glibc malloc/free measured ~7% of the node's CPU
/// under the edge read benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> &'static str {
    "usage: tessera-edge [--manifest spin.toml] [--listen 127.0.0.1:3000]\n\
     Settings come from the environment (EDGE_*, SPIN_VARIABLE_*); see .env.example."
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = HostConfig::from_env()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--manifest" | "-f" => {
                config.manifest = args.next().ok_or_else(|| anyhow::anyhow!(usage()))?.into();
            }
            "--listen" => {
                config.addr = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!(usage()))?
                    .parse()?;
            }
            "--help" | "-h" => {
                println!("{}", usage());
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    init_tracing(config.log_json);
    config.connections_max =
        tessera_serving::fit_to_open_files(config.connections_max, "EDGE_CONNECTIONS_MAX");
    let host = EdgeHost::load(config)?;
    let running = host.start().await?;
    // Two lines on stdout that scripts and tests wait for, in this order and format.
    println!("tessera-edge listening on http://{}", running.addr());
    println!("tessera-edge metrics on http://{}", running.metrics_addr());
    running.run_until(tessera_serving::shutdown_signal()).await;
    tracing::info!("tessera-edge stopped");
    Ok(())
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

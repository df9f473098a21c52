//! The commands: `up`, `test`, `bench` and `services`.

use std::env;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::net::{free_port, redact, HostPort};
use crate::process::{
    bail_if_interrupted, describe, interrupted, run_captured, run_checked, shell_quote, succeeds,
    Supervised, POLL,
};
use crate::services::Services;
use crate::Paths;

const DEFAULT_LEDGER_ADDR: &str = "127.0.0.1:4000";
const DEFAULT_EDGE_ADDR: &str = "127.0.0.1:3000";
/// Where the ledger and the edge serve `/metrics` by default (their operations listeners,
/// `METRICS_ADDR` / `EDGE_METRICS_ADDR`: loopback, not the public ports).
const DEFAULT_LEDGER_METRICS: &str = "http://127.0.0.1:4001";
const DEFAULT_EDGE_METRICS: &str = "http://127.0.0.1:3001";
/// Time the ledger gets for a graceful shutdown after Ctrl-C before it is killed.
const LEDGER_GRACE: Duration = Duration::from_secs(30);
/// Time cargo gets to exit after Ctrl-C (it stops at once on SIGINT).
pub(crate) const CARGO_GRACE: Duration = Duration::from_secs(10);
/// How long `up` waits for the ledger to listen before printing its URLs anyway.
const LEDGER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// `cargo xtask up`: services, build, seed, then the ledger and one edge node in the
/// foreground until Ctrl-C.
pub fn up(paths: &Paths) -> Result<()> {
    let services = Services::ensure(&paths.target_dir)?;
    bail_if_interrupted()?;
    build_edge_components(paths)?;
    header("cargo build -p tessera-ledger -p tessera-edge");
    run_checked(
        paths
            .cargo()
            .args(["build", "-p", "tessera-ledger", "-p", "tessera-edge"]),
        CARGO_GRACE,
    )?;
    let stack = Stack::new(paths, &services)?;
    header("tessera-ledger seed");
    run_checked(&mut stack.ledger("seed"), LEDGER_GRACE)?;
    header("tessera-ledger serve");
    let ledger = Supervised::spawn(&mut stack.ledger("serve"), LEDGER_GRACE)?;
    header("tessera-edge (spin.toml)");
    let edge = Supervised::spawn(&mut stack.edge(), LEDGER_GRACE)?;
    supervise(&stack, ledger, edge)
    // `services` drops here: throwaway PostgreSQL/Redis stop after the ledger is gone.
}

/// What `up` runs: where the binaries are, their addresses, and the secret they share.
struct Stack<'a> {
    paths: &'a Paths,
    services: &'a Services,
    database_url: String,
    ledger_addr: String,
    edge_addr: String,
    /// A fresh secret per run: the edge presents it, the ledger recognises edge traffic by it.
    edge_key: String,
    /// A fresh queue key per run (`<id>:<secret>`; hex digits are URL-safe base64 too),
    /// shared by the ledger and the edge.
    queue_key: String,
}

impl<'a> Stack<'a> {
    fn new(paths: &'a Paths, services: &'a Services) -> Result<Self> {
        Ok(Self {
            paths,
            services,
            database_url: services.database_url("tessera"),
            ledger_addr: env::var("LEDGER_ADDR").unwrap_or_else(|_| DEFAULT_LEDGER_ADDR.to_owned()),
            edge_addr: env::var("EDGE_ADDR").unwrap_or_else(|_| DEFAULT_EDGE_ADDR.to_owned()),
            edge_key: random_hex(16)?,
            queue_key: format!("1:{}", random_hex(32)?),
        })
    }

    fn binary(&self, name: &str) -> std::path::PathBuf {
        self.paths.target_dir.join("debug").join(name)
    }

    /// `tessera-ledger <subcommand>` with the services and the edge key.
    fn ledger(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(self.binary("tessera-ledger"));
        cmd.arg(subcommand)
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", &self.services.redis_url)
            .env("LEDGER_ADDR", &self.ledger_addr)
            .env("EDGE_KEY", &self.edge_key)
            .env("QUEUE_KEY", &self.queue_key)
            .current_dir(&self.paths.root);
        cmd
    }

    /// One edge node running spin.toml in front of the ledger.
    fn edge(&self) -> Command {
        let mut cmd = Command::new(self.binary("tessera-edge"));
        cmd.env("EDGE_ADDR", &self.edge_addr)
            .env("EDGE_MANIFEST", self.paths.root.join("spin.toml"))
            .env(
                "SPIN_VARIABLE_LEDGER_URL",
                ledger_base_url(&self.ledger_addr).0,
            )
            .env("SPIN_VARIABLE_EDGE_KEY", &self.edge_key)
            .env("SPIN_VARIABLE_QUEUE_KEY", &self.queue_key)
            .env("SPIN_VARIABLE_REDIS_ADDRESS", &self.services.redis_url)
            .current_dir(&self.paths.root);
        cmd
    }

    /// The URLs, once both listen (or after a while, if the probe can't tell).
    fn announce(&self) {
        let (ledger_url, _) = ledger_base_url(&self.ledger_addr);
        let (edge_url, _) = ledger_base_url(&self.edge_addr);
        println!();
        println!("storefront: {edge_url}/  (the web app, served by the edge)");
        println!("edge:     {edge_url}  (the storefront API from the wasm components; try: curl {edge_url}/v1/events)");
        println!("ledger:   {ledger_url}  (try: curl {ledger_url}/v1/events)");
        println!("openapi:  {ledger_url}/openapi.json");
        let metrics = |var: &str, default: &str| {
            env::var(var).map_or_else(|_| default.to_owned(), |addr| ledger_base_url(&addr).0)
        };
        println!(
            "metrics:  {}/metrics (ledger)  {}/metrics (edge): operations listeners, not the public ports",
            metrics("METRICS_ADDR", DEFAULT_LEDGER_METRICS),
            metrics("EDGE_METRICS_ADDR", DEFAULT_EDGE_METRICS),
        );
        println!("postgres: {}", redact(&self.database_url));
        println!("redis:    {}", redact(&self.services.redis_url));
        println!("Ctrl-C stops the edge, the ledger and the services xtask started.");
    }

    fn ready(&self) -> bool {
        let reachable = |addr: &str| {
            ledger_base_url(addr)
                .1
                .as_ref()
                .is_none_or(HostPort::reachable)
        };
        reachable(&self.ledger_addr) && reachable(&self.edge_addr)
    }
}

/// Runs until one process exits (then the other is killed) or, after Ctrl-C, until both
/// have finished their graceful shutdown.
fn supervise(stack: &Stack, mut ledger: Supervised, mut edge: Supervised) -> Result<()> {
    let announce_by = Instant::now() + LEDGER_READY_TIMEOUT;
    let mut announced = false;
    let (mut ledger_exit, mut edge_exit) = (None, None);
    let (status, which) = loop {
        if ledger_exit.is_none() {
            ledger_exit = ledger.poll()?;
        }
        if edge_exit.is_none() {
            edge_exit = edge.poll()?;
        }
        match (ledger_exit, edge_exit) {
            (Some(l), Some(_)) if interrupted() => break (l, "tessera-ledger serve"),
            (Some(l), _) if !interrupted() => break (l, "tessera-ledger serve"),
            (_, Some(e)) if !interrupted() => break (e, "tessera-edge"),
            _ => {}
        }
        if !announced && !interrupted() && (stack.ready() || Instant::now() >= announce_by) {
            stack.announce();
            announced = true;
        }
        sleep(POLL);
    };
    drop((ledger, edge));
    if !interrupted() && !status.success() {
        bail!("{which} exited ({status})");
    }
    Ok(())
}

/// `n` random bytes as hex, from the kernel.
fn random_hex(n: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `http://host:port` for LEDGER_ADDR, and where to probe it. A wildcard bind address is
/// shown (and probed) as loopback.
fn ledger_base_url(addr: &str) -> (String, Option<HostPort>) {
    match addr.parse::<SocketAddr>() {
        Ok(sock) => {
            let ip = match sock.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                IpAddr::V6(ip) if ip.is_unspecified() => {
                    IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                }
                ip => ip,
            };
            let shown = SocketAddr::new(ip, sock.port());
            (
                format!("http://{shown}"),
                Some(HostPort::new(&ip.to_string(), sock.port())),
            )
        }
        // A host name: show it as given, probe it if it has a port.
        Err(_) => {
            let probe = addr
                .rsplit_once(':')
                .and_then(|(host, port)| Some(HostPort::new(host, port.parse().ok()?)));
            (format!("http://{addr}"), probe)
        }
    }
}

/// `cargo xtask test [ARGS]`: fmt check, clippy, then every test with services up.
pub fn test(paths: &Paths, test_args: &[String]) -> Result<()> {
    let services = Services::ensure(&paths.target_dir)?;
    bail_if_interrupted()?;
    // The storefront's browser tests (tests/storefront.rs) and the bench's first load
    // drive Chromium: installed first, so a missing tool stops the run before the builds.
    crate::browser::ensure_browser_tools(paths)?;
    let with_services = |mut cmd: Command| {
        cmd.env("DATABASE_URL", services.database_url("postgres"))
            .env("REDIS_URL", &services.redis_url);
        cmd
    };
    let tools = Components::check(paths);
    if tools.rustfmt {
        check_format(paths)?;
    } else {
        eprintln!(
            "xtask: warning: rustfmt is not installed; skipping `cargo fmt --all -- --check`"
        );
    }
    if tools.clippy {
        lint(paths, with_services(paths.cargo()))?;
    } else {
        eprintln!("xtask: warning: clippy is not installed; skipping `cargo clippy`");
    }
    // The end-to-end tests run the built components.
    build_edge_components(paths)?;
    let mut unit = paths.cargo();
    unit.args(["test", "--manifest-path", COMPONENTS_MANIFEST]);
    unit.args(["-p", "tessera-edge-cache"]);
    header(&describe(&unit));
    run_checked(&mut unit, CARGO_GRACE)?;
    let mut test = with_services(paths.cargo());
    test.args(["test", "--workspace", "--all-targets"])
        .args(test_args);
    header(&describe(&test));
    run_checked(&mut test, CARGO_GRACE)?;
    // The benchmark's correctness checks (oversell, conservation under load), on the debug
    // builds just tested: its figures are not judged here.
    run_bench(
        paths,
        &services,
        Profile::Debug,
        Builds::Plain,
        &["--quick".to_owned()],
    )?;
    // The fault campaign's short form (its own PostgreSQL and Redis).
    crate::chaos::run_campaign(paths, true)?;
    crate::chaos::run_fuzzers(paths, true)?;
    api_conformance(paths, &services)?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// `cargo xtask conformance`: schemathesis alone (as `test` runs it last).
pub fn conformance(paths: &Paths) -> Result<()> {
    let services = Services::ensure(&paths.target_dir)?;
    bail_if_interrupted()?;
    build_edge_components(paths)?;
    let mut build = paths.cargo();
    build.args(["build", "-p", "tessera-ledger", "-p", "tessera-edge"]);
    header(&describe(&build));
    run_checked(&mut build, CARGO_GRACE)?;
    api_conformance(paths, &services)
}

/// How long the schemathesis stack gets to listen.
const CONFORMANCE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Schemathesis against the ledger and an edge node on a database of their own (seeded
/// with the demo data, dropped afterwards), free ports and their own Redis channel.
fn api_conformance(paths: &Paths, services: &Services) -> Result<()> {
    let run = format!("schemathesis_{}", std::process::id());
    let database = format!("tessera_{run}");
    let stack = Stack {
        paths,
        services,
        database_url: services.named_database_url(&database),
        ledger_addr: format!("127.0.0.1:{}", free_port()?),
        edge_addr: format!("127.0.0.1:{}", free_port()?),
        edge_key: random_hex(16)?,
        queue_key: format!("1:{}", random_hex(32)?),
    };
    let channel = format!("tessera.{run}");
    header("tessera-ledger seed (schemathesis)");
    let seeded = run_captured(stack.ledger("seed").env("OUTBOX_CHANNEL", &channel))?;
    let printed = |label: &str| {
        seeded
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .with_context(|| format!("`tessera-ledger seed` printed no `{label}`"))
    };
    let token = printed("admin token:")?;
    let gate_token = printed("gate token:")?;
    let checked = (|| {
        let mut ledger = stack.ledger("serve");
        // Schemathesis registers webhooks with whatever public addresses it makes up: the
        // ledger must not send them anything (nothing here leaves this machine).
        ledger
            .env("OUTBOX_CHANNEL", &channel)
            .env("WEBHOOK_DISPATCH", "off")
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()?));
        let _ledger = Supervised::spawn(&mut ledger, LEDGER_GRACE)?;
        let mut edge = stack.edge();
        edge.env("SPIN_VARIABLE_INVALIDATION_CHANNEL", &channel)
            .env("EDGE_METRICS_ADDR", format!("127.0.0.1:{}", free_port()?));
        // Rate limits off: schemathesis is one client (127.0.0.1) sending far more than
        // any person would; the limits have their own tests (tests/ratelimit.rs).
        for class in ["READS", "JOINS", "HOLDS", "CHECKIN"] {
            edge.env(format!("SPIN_VARIABLE_RATE_LIMIT_{class}_PER_S"), "0");
        }
        let _edge = Supervised::spawn(&mut edge, LEDGER_GRACE)?;
        let ready_by = Instant::now() + CONFORMANCE_READY_TIMEOUT;
        while !stack.ready() {
            bail_if_interrupted()?;
            if Instant::now() > ready_by {
                bail!("the ledger and edge for schemathesis did not listen within {CONFORMANCE_READY_TIMEOUT:?}");
            }
            sleep(POLL);
        }
        let url = |addr: &str| ledger_base_url(addr).0;
        crate::schemathesis::run_schemathesis(
            paths,
            &url(&stack.ledger_addr),
            &url(&stack.edge_addr),
            crate::schemathesis::Tokens {
                admin: &token,
                gate: &gate_token,
            },
        )
    })();
    drop_database(services, &database);
    checked
}

/// Best effort: `psql` may be missing where PostgreSQL is remote (the name is unique).
fn drop_database(services: &Services, database: &str) {
    let mut psql = Command::new("psql");
    psql.arg(services.named_database_url("postgres")).args([
        "-qc",
        &format!("drop database if exists {database} with (force)"),
    ]);
    if let Err(err) = run_captured(&mut psql) {
        eprintln!("xtask: warning: could not drop {database}: {err:#}");
    }
}

/// `cargo fmt --check` over every workspace.
fn check_format(paths: &Paths) -> Result<()> {
    for manifest in [
        None,
        Some(COMPONENTS_MANIFEST),
        Some(FIXTURE_COMPONENTS_MANIFEST),
        Some(FUZZ_MANIFEST),
    ] {
        let mut fmt = paths.cargo();
        fmt.arg("fmt");
        if let Some(manifest) = manifest {
            fmt.args(["--manifest-path", manifest]);
        }
        fmt.args(["--all", "--", "--check"]);
        header(&describe(&fmt));
        run_checked(&mut fmt, CARGO_GRACE)?;
    }
    Ok(())
}

/// Clippy with warnings denied: the native workspace (`root`: a cargo command with the
/// services in its environment, for sqlx), the components and the test fixtures for wasm32,
/// and the shared cache crate's native tests.
fn lint(paths: &Paths, mut root: Command) -> Result<()> {
    const DENY_WARNINGS: [&str; 3] = ["--", "-D", "warnings"];
    root.args(["clippy", "--workspace", "--all-targets"])
        .args(DENY_WARNINGS);
    header(&describe(&root));
    run_checked(&mut root, CARGO_GRACE)?;
    add_wasm_target();
    for manifest in [COMPONENTS_MANIFEST, FIXTURE_COMPONENTS_MANIFEST] {
        let mut wasm = paths.cargo();
        wasm.args(["clippy", "--manifest-path", manifest, "--workspace"])
            .args(["--target", WASM_TARGET])
            .args(DENY_WARNINGS);
        header(&describe(&wasm));
        run_checked(&mut wasm, CARGO_GRACE)?;
    }
    let mut cache = paths.cargo();
    cache
        .args(["clippy", "--manifest-path", COMPONENTS_MANIFEST])
        .args(["-p", "tessera-edge-cache", "--all-targets"])
        .args(DENY_WARNINGS);
    header(&describe(&cache));
    run_checked(&mut cache, CARGO_GRACE)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Release,
    Debug,
}

/// `cargo xtask bench [--quick] [--only 1,3]`: release builds, then every scenario. The
/// full run measures profile-guided builds (`crate::pgo`); `--quick` the plain ones.
pub fn bench(paths: &Paths, args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" if rest.next().is_some() => {}
            other => bail!("`bench` takes --quick and --only N,M (got `{other}`)"),
        }
    }
    let services = Services::ensure(&paths.target_dir)?;
    bail_if_interrupted()?;
    // Scenario 14 (the storefront's first load) drives Chromium.
    crate::browser::ensure_browser_tools(paths)?;
    let builds = if quick {
        Builds::Plain
    } else {
        Builds::ProfileGuided
    };
    run_bench(paths, &services, Profile::Release, builds, args)
}

/// Tells the bench the browser tools were installed (its `BROWSER_REQUIRED_ENV`).
const BENCH_BROWSER_ENV: &str = "TESSERA_BENCH_BROWSER";

/// Which builds a bench run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Builds {
    /// The workspace's own builds in the run's profile.
    Plain,
    /// Release, optimised with a profile of the bench's own traffic (`crate::pgo`).
    ProfileGuided,
}

fn run_bench(
    paths: &Paths,
    services: &Services,
    profile: Profile,
    choice: Builds,
    args: &[String],
) -> Result<()> {
    let (out, label) = match profile {
        Profile::Release => ("bench", "release"),
        Profile::Debug => ("bench-debug", "debug"),
    };
    let binaries = match choice {
        Builds::Plain => crate::pgo::Binaries {
            dir: build_bench_binaries(paths, profile)?,
            note: String::new(),
        },
        Builds::ProfileGuided => profile_guided(paths, services, profile, label)?,
    };
    let mut run = bench_invocation(paths, &binaries.dir, "run", &paths.target_dir.join(out));
    with_services(&mut run, services, label);
    if !binaries.note.is_empty() {
        run.args(["--build-note", &binaries.note]);
    }
    run.args(args);
    header(&describe(&run));
    run_checked(&mut run, CARGO_GRACE)
}

/// The bench's servers and build label, in the environment and arguments of `run`.
fn with_services(run: &mut Command, services: &Services, label: &str) {
    // In the environment, not the arguments: the command line is printed.
    run.env("DATABASE_URL", services.database_url("postgres"))
        .env("REDIS_URL", &services.redis_url)
        // `test` and `bench` installed the browser tools: a missing one is a failure here,
        // not a skipped scenario.
        .env(BENCH_BROWSER_ENV, "required")
        .args(["--build", label]);
}

/// The ledger, the edge and the bench optimised with a profile of the bench's own traffic
/// (`crate::pgo`), trained by a quick run of every scenario.
fn profile_guided(
    paths: &Paths,
    services: &Services,
    profile: Profile,
    label: &str,
) -> Result<crate::pgo::Binaries> {
    let plain = || build_bench_binaries(paths, profile);
    let train = |instrumented: &Path, out: &Path| {
        // The edges run spin.toml's components (`build_bench_binaries` builds them too).
        build_edge_components(paths)?;
        let mut train = bench_invocation(paths, instrumented, "run", out);
        with_services(&mut train, services, label);
        train.arg("--quick");
        header(&describe(&train));
        run_checked(&mut train, CARGO_GRACE)
    };
    crate::pgo::optimised_binaries(paths, plain, train)
}

/// Builds the ledger, the edge and the bench (and the components) in `profile`; returns
/// the binaries' folder.
fn build_bench_binaries(paths: &Paths, profile: Profile) -> Result<PathBuf> {
    build_edge_components(paths)?;
    let mut build = paths.cargo();
    build.args([
        "build",
        "-p",
        "tessera-ledger",
        "-p",
        "tessera-edge",
        "-p",
        "tessera-bench",
    ]);
    let dir = match profile {
        Profile::Release => {
            build.arg("--release");
            "release"
        }
        Profile::Debug => "debug",
    };
    header(&describe(&build));
    run_checked(&mut build, CARGO_GRACE)?;
    Ok(paths.target_dir.join(dir))
}

/// `tessera-bench <subcommand>` with the binaries in `bin_dir`, the manifest and `out` as
/// its output folder.
fn bench_invocation(paths: &Paths, bin_dir: &Path, subcommand: &str, out: &Path) -> Command {
    let mut run = Command::new(bin_dir.join("tessera-bench"));
    run.arg(subcommand)
        .arg("--out")
        .arg(out)
        .arg("--ledger-bin")
        .arg(bin_dir.join("tessera-ledger"))
        .arg("--edge-bin")
        .arg(bin_dir.join("tessera-edge"))
        .arg("--manifest")
        .arg(paths.root.join("spin.toml"))
        .current_dir(&paths.root);
    run
}

/// Builds the ledger, the edge and the bench (and the components) in `profile`, and returns
/// `tessera-bench <subcommand>` with them, the manifest and `target/<out>` as its output
/// folder.
pub(crate) fn bench_command(
    paths: &Paths,
    profile: Profile,
    subcommand: &str,
    out: &str,
) -> Result<Command> {
    let dir = build_bench_binaries(paths, profile)?;
    Ok(bench_invocation(
        paths,
        &dir,
        subcommand,
        &paths.target_dir.join(out),
    ))
}

/// The edge components' own cargo workspace (wasm-only dependencies, a size-optimised
/// release profile); it shares `target/` with the main workspace.
const COMPONENTS_MANIFEST: &str = "edge/components/Cargo.toml";
/// The test-only components (the host's fixtures), a workspace of their own so the
/// production one and `spin build` never see them; also built into the shared `target/`.
const FIXTURE_COMPONENTS_MANIFEST: &str = "tests/fixtures/components/Cargo.toml";
const WASM_TARGET: &str = "wasm32-wasip2";
/// The fuzz targets' own workspace (built only by cargo-fuzz; formatted like the rest).
const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";

fn add_wasm_target() {
    // rustup may be absent (a distribution's Rust); then the target must already be there.
    if let Err(e) = run_captured(Command::new("rustup").args(["target", "add", WASM_TARGET])) {
        eprintln!("xtask: warning: `rustup target add {WASM_TARGET}` failed ({e:#}); trying the build anyway");
    }
}

/// Builds every component `spin.toml` names, exactly as `spin build` would: release,
/// wasm32-wasip2; then the test fixtures the tests' manifests (tests/fixtures/*.toml) add.
/// The shared domain crate is compiled into them, so this also proves it still builds for
/// the edge.
pub fn build_edge_components(paths: &Paths) -> Result<()> {
    add_wasm_target();
    for manifest in [COMPONENTS_MANIFEST, FIXTURE_COMPONENTS_MANIFEST] {
        let mut build = paths.cargo();
        build.args([
            "build",
            "--manifest-path",
            manifest,
            "--workspace",
            "--release",
            "--target",
            WASM_TARGET,
        ]);
        header(&describe(&build));
        run_checked(&mut build, CARGO_GRACE)?;
    }
    Ok(())
}

/// `cargo xtask services`: services up until Ctrl-C, with the variables to reach them.
pub fn services(paths: &Paths) -> Result<()> {
    let mut services = Services::ensure(&paths.target_dir)?;
    bail_if_interrupted()?;
    // Database `postgres`: it exists, and sqlx::test creates its per-test databases from it.
    // A variable the caller set is not echoed back: it may carry a password.
    for (name, url) in [
        ("DATABASE_URL", services.database_url("postgres")),
        ("REDIS_URL", services.redis_url.clone()),
    ] {
        if env::var_os(name).is_some_and(|v| !v.is_empty()) {
            println!("# {name} is already set ({})", redact(&url));
        } else {
            println!("export {name}={}", shell_quote(&url));
        }
    }
    eprintln!("xtask: services are up; Ctrl-C stops them");
    while !interrupted() {
        services.check_alive()?;
        sleep(POLL);
    }
    Ok(())
}

/// Which optional cargo components this toolchain has.
struct Components {
    rustfmt: bool,
    clippy: bool,
}

impl Components {
    /// Tries `rustup component add` once when one is missing; a toolchain without rustup
    /// (Debian's cargo) just skips those steps.
    fn check(paths: &Paths) -> Self {
        let probe = |tool: &str| succeeds(paths.cargo().args([tool, "--version"]));
        let found = Self {
            rustfmt: probe("fmt"),
            clippy: probe("clippy"),
        };
        if found.rustfmt && found.clippy {
            return found;
        }
        let mut rustup = Command::new("rustup");
        rustup
            .args(["component", "add", "rustfmt", "clippy"])
            .current_dir(&paths.root);
        header(&describe(&rustup));
        if let Err(err) = run_captured(&mut rustup).context("rustup could not add rustfmt/clippy") {
            eprintln!("xtask: warning: {err:#}");
        }
        Self {
            rustfmt: probe("fmt"),
            clippy: probe("clippy"),
        }
    }
}

pub(crate) fn header(step: &str) {
    eprintln!("\n==> {step}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_urls() {
        let (url, probe) = ledger_base_url("127.0.0.1:4000");
        assert_eq!(url, "http://127.0.0.1:4000");
        assert_eq!(probe, Some(HostPort::new("127.0.0.1", 4000)));
        assert_eq!(ledger_base_url("0.0.0.0:80").0, "http://127.0.0.1:80");
        assert_eq!(ledger_base_url("[::]:80").0, "http://[::1]:80");
        assert_eq!(
            ledger_base_url("localhost:4000").1,
            Some(HostPort::new("localhost", 4000))
        );
    }
}

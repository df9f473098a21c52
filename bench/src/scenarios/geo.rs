//! Scenario 8: the network the edge exists for. Every other scenario runs on one machine
//! with no distance between the tiers, where an edge can only lose to the ledger it sits in
//! front of. Here the buyer is on another continent: the edge node is near them (1 ms one
//! way), the ledger and Redis far (40 ms one way), each link a delaying TCP proxy from the
//! test kit (`DelayProxy`; this kernel has no netem). Measured, through the edge and
//! straight to the ledger: browsing (event detail and availability, cached at the edge),
//! holds (forwarded by the edge: what the round trips cost), and how long a commit at the
//! ledger takes to show at the remote edge (the invalidation crosses the ocean too).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tessera_testkit::delay_proxy::DelayProxy;
use tessera_testkit::metrics::sum_metric;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::audit::ZoneAudit;
use crate::load::{self, histogram, quantile_ms, Call, Figures};
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{slice_on, watch_zone, zone_available};
use crate::stack::{start_edge_via, Edge, Env, EventIds, Ledger};
use crate::workloads::{hold_call, Holds, Reads};
use crate::{Plan, Progress};

/// Buyer ↔ edge: a node in the buyer's city.
const NEAR_ONE_WAY: Duration = Duration::from_millis(1);
/// Buyer ↔ ledger, edge ↔ ledger and edge ↔ Redis: across an ocean (80 ms round trip).
const FAR_ONE_WAY: Duration = Duration::from_millis(40);
/// Ping-pongs per link in the check (odd: a plain median), and how far the added round
/// trip's median may be from the configured one.
const PING_SAMPLES: usize = 21;
const RTT_TOLERANCE: Duration = Duration::from_millis(1);
/// The quick form's tolerance: it runs in CI on debug builds beside other work, where the
/// scheduler alone can add a millisecond to a median (the proxy's own unit test holds ± 1 ms).
const RTT_TOLERANCE_QUICK: Duration = Duration::from_millis(3);
/// No ping may stall the run.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Where Redis listens when its URL names no port.
const REDIS_PORT_DEFAULT: u16 = 6379;
/// A Redis reply line is short (`+PONG`, or an error when a password is set).
const REDIS_REPLY_BYTES_MAX: usize = 512;
/// Closed-loop clients of the browse and hold runs: latency figures at a modest rate.
const CLIENTS: usize = 4;
/// Before measuring: each client's connection (and its handshake's 80 ms round trip).
const WARMUP: Duration = Duration::from_millis(500);
/// Zones: holds through the edge, holds straight to the ledger, the visibility changes.
const ZONE_EDGE_HOLDS: usize = 0;
const ZONE_DIRECT_HOLDS: usize = 1;
const ZONE_VISIBLE: usize = 2;
const ZONES: usize = 3;
const STOCK: i32 = 1_000_000;
/// A change not shown by the edge after this long counts as missed.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of the edge (each poll is itself a 2 ms round trip).
const POLL_PAUSE: Duration = Duration::from_micros(500);
/// The goals: browsing through the edge at most this p50 while the ledger is at least the
/// far round trip away; a hold through the edge at most this much slower than direct.
const GOAL_BROWSE_EDGE_P50_MS: f64 = 5.0;
const GOAL_BROWSE_DIRECT_P50_MS: f64 = 80.0;
const GOAL_HOLD_OVERHEAD_MS: f64 = 5.0;

/// The links, each a proxy in front of its upstream.
struct Links {
    client_edge: DelayProxy,
    client_ledger: DelayProxy,
    edge_ledger: DelayProxy,
    edge_redis: DelayProxy,
}

/// A ledger, and one edge node that reaches it (and Redis) only across the far links.
struct World {
    ledger: Ledger,
    edge: Edge,
    ids: EventIds,
    links: Links,
}

/// What one link adds to a ping-pong: medians of direct and proxied samples.
struct LinkRtt {
    name: &'static str,
    one_way: Duration,
    direct_median: Duration,
    through_median: Duration,
    through_min: Duration,
}

/// The browse and hold runs, through the edge and straight to the ledger.
struct Runs {
    browse_edge: Figures,
    browse_direct: Figures,
    hold_edge: Figures,
    hold_direct: Figures,
    /// Connections the edge opened to the ledger during its hold run.
    edge_connections: u64,
    /// The edge's cache answers during its browse run (warm-up included).
    browse_cache: CacheAnswers,
    /// Holds answered 201 (one ticket each), warm-up included: what the audit expects.
    edge_granted: u64,
    direct_granted: u64,
}

/// How the edge's cache answered reads (`edge_cache_total` by result).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct CacheAnswers {
    hit: f64,
    miss: f64,
    bypass: f64,
}

impl CacheAnswers {
    async fn read(edge: &Edge) -> anyhow::Result<Self> {
        let text = edge.scrape().await.context("the edge's metrics")?;
        let result = |r: &str| sum_metric(&text, "edge_cache_total", &[("result", r)]);
        Ok(Self {
            hit: result("hit"),
            miss: result("miss"),
            bypass: result("bypass"),
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            hit: self.hit - before.hit,
            miss: self.miss - before.miss,
            bypass: self.bypass - before.bypass,
        }
    }
}

/// Share of the browse run's reads the edge may read through for want of a fresh stream:
/// heartbeats cross the same 80 ms as changes, and the lease outlasts several of them. (A
/// relay that skipped heartbeats, as one did behind its own dropped transaction, made the
/// remote edge read through for most of the run.)
const BYPASS_SHARE_MAX: f64 = 0.01;

/// The remote edge kept its freshness lease while browsing: the stream's heartbeats
/// arrived, so the cache answered.
fn check_lease(section: &mut Section, cache: CacheAnswers) {
    let reads = cache.hit + cache.miss + cache.bypass;
    let share = if reads > 0.0 {
        cache.bypass / reads
    } else {
        1.0
    };
    section.check(
        "the remote edge's cache stayed trusted (heartbeats crossed the link)",
        share <= BYPASS_SHARE_MAX,
        format!(
            "{} of {} browse reads read through ({:.2}%, at most {:.0}%)",
            count(cache.bypass),
            count(reads),
            share * 100.0,
            BYPASS_SHARE_MAX * 100.0
        ),
    );
}

/// Commit at the ledger → shown by the remote edge.
struct Visibility {
    latency_us: Histogram<u64>,
    missed: u64,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("geo", "8. A buyer on another continent");
    progress.step("geo: starting a ledger, the links and a remote edge");
    let world = World::start(env).await?;
    world.fill().await?;
    progress.step("geo: ping-pong through every link");
    let links = world.links.measure(&world.browse_paths()[0]).await?;
    check_links(&mut section, &links, plan.quick);
    let runs = world.runs(plan, progress).await?;
    progress.step("geo: commit at the ledger → visible at the remote edge");
    let visibility = world.visibility(plan).await?;
    audit(&mut section, &world, &runs, plan).await?;
    check_lease(&mut section, runs.browse_cache);
    goals(&mut section, &runs);
    section.notes.extend(notes(plan));
    section.tables.push(latency_table(&runs));
    section.tables.push(links_table(&links, &world.links));
    section.notes.push(format!(
        "The edge's cache during its browse run: {} hits, {} misses, {} bypasses (read through: the invalidation stream was not fresh). \
         Connections the edge opened to the ledger during its hold run: {} for {} holds.",
        count(runs.browse_cache.hit),
        count(runs.browse_cache.miss),
        count(runs.browse_cache.bypass),
        count(runs.edge_connections as f64),
        count(runs.edge_granted as f64)
    ));
    section.tables.push(visibility.table(plan));
    section.data = json!({
        "links": links.iter().map(LinkRtt::data).collect::<Vec<_>>(),
        "browse_edge": runs.browse_edge, "browse_direct": runs.browse_direct,
        "hold_edge": runs.hold_edge, "hold_direct": runs.hold_direct,
        "edge_ledger_connections_during_edge_holds": runs.edge_connections,
        "browse_edge_cache": runs.browse_cache,
        "visibility": visibility.data(plan),
    });
    world.stop().await?;
    Ok(section)
}

impl World {
    async fn start(env: &Env) -> anyhow::Result<Self> {
        let ledger = Ledger::start(env, "geo", &[]).await?;
        let ids = ledger.create_event(env, "geo", ZONES, STOCK).await?;
        let ledger_addr: SocketAddr = ledger.authority.parse().context("the ledger's address")?;
        let redis_addr = redis_socket(&env.redis_url).await?;
        let client_ledger = DelayProxy::start(ledger_addr, FAR_ONE_WAY).await?;
        let edge_ledger = DelayProxy::start(ledger_addr, FAR_ONE_WAY).await?;
        let edge_redis = DelayProxy::start(redis_addr, FAR_ONE_WAY).await?;
        let edge = start_edge_via(
            env,
            "geo-edge",
            &ledger,
            &format!("http://{}", edge_ledger.addr()),
            &redis_through(&env.redis_url, edge_redis.addr())?,
            &[],
        )
        .await?;
        let edge_addr: SocketAddr = edge.authority.parse().context("the edge's address")?;
        let client_edge = DelayProxy::start(edge_addr, NEAR_ONE_WAY).await?;
        Ok(Self {
            ledger,
            edge,
            ids,
            links: Links {
                client_edge,
                client_ledger,
                edge_ledger,
                edge_redis,
            },
        })
    }

    /// The two browse reads (event detail, the show's availability).
    fn browse_paths(&self) -> Vec<String> {
        vec![
            format!("/v1/events/{}", self.ids.event_id),
            format!("/v1/shows/{}/availability", self.ids.show_id),
        ]
    }

    /// Fills the edge's cache (the first reads cross to the ledger), as earlier buyers
    /// would have.
    async fn fill(&self) -> anyhow::Result<()> {
        let edge = self.links.client_edge.addr().to_string();
        for path in self.browse_paths() {
            let answer = load::once(&edge, &Call::get(0, path.clone())).await?;
            if answer.status != 200 {
                bail!(
                    "filling the edge's cache: {path} answered {}",
                    answer.status
                );
            }
        }
        Ok(())
    }

    /// Browsing, then holds, each through the edge and straight to the ledger.
    async fn runs(&self, plan: &Plan, progress: &Progress) -> anyhow::Result<Runs> {
        let edge = self.links.client_edge.addr().to_string();
        let direct = self.links.client_ledger.addr().to_string();
        let reads = Arc::new(Reads {
            paths: self.browse_paths(),
        });
        progress.step("geo: browsing through the edge, then straight to the ledger");
        let cache_before = CacheAnswers::read(&self.edge).await?;
        let browse_edge = slice_on(&edge, reads.clone(), CLIENTS, WARMUP, plan.geo_window).await?;
        let browse_cache = CacheAnswers::read(&self.edge).await?.since(cache_before);
        let browse_direct = slice_on(&direct, reads, CLIENTS, WARMUP, plan.geo_window).await?;
        progress.step("geo: holds through the edge, then straight to the ledger");
        let (edge_holds, direct_holds) =
            (self.holds(ZONE_EDGE_HOLDS), self.holds(ZONE_DIRECT_HOLDS));
        let accepted_before = self.links.edge_ledger.accepted();
        let hold_edge =
            slice_on(&edge, edge_holds.clone(), CLIENTS, WARMUP, plan.geo_window).await?;
        let edge_connections = self.links.edge_ledger.accepted() - accepted_before;
        let hold_direct = slice_on(
            &direct,
            direct_holds.clone(),
            CLIENTS,
            WARMUP,
            plan.geo_window,
        )
        .await?;
        Ok(Runs {
            browse_edge,
            browse_direct,
            hold_edge,
            hold_direct,
            edge_connections,
            browse_cache,
            edge_granted: edge_holds.granted.load(Ordering::Relaxed),
            direct_granted: direct_holds.granted.load(Ordering::Relaxed),
        })
    }

    /// Buyers of one ticket each on zone `zone` (a zone per run, so each can be audited
    /// against its own 201s).
    fn holds(&self, zone: usize) -> Arc<Holds> {
        let holds = Holds::new(&self.ids.show_id, &self.ids.zone_ids[zone], 1, zone as u64);
        Arc::new(Holds {
            quantity_max: 1,
            stop_when_sold_out: false,
            ..holds
        })
    }

    /// One change at a time: a 1-ticket hold sent to the ledger on loopback (its 201 is
    /// the commit, give or take a fraction of a millisecond), then the edge polled through
    /// the buyer's link until it shows the new count.
    async fn visibility(&self, plan: &Plan) -> anyhow::Result<Visibility> {
        let (show, zone) = (&self.ids.show_id, &self.ids.zone_ids[ZONE_VISIBLE]);
        let path = format!("/v1/shows/{show}/availability");
        let mut ledger = load::Client::new(&self.ledger.authority);
        let mut edge = load::Client::new(&self.links.client_edge.addr().to_string());
        let before = ledger.send(&Call::get(0, path.clone())).await?;
        let start = zone_available(&before.body, zone).context("the zone's availability")?;
        let mut visibility = Visibility {
            latency_us: histogram(),
            missed: 0,
        };
        for change in 0..plan.geo_changes {
            let hold = hold_call(0, show, zone, 1, &format!("geo-visible-{change}"));
            let answer = ledger.send(&hold).await?;
            if answer.status != 201 {
                bail!("hold {change} at the ledger answered {}", answer.status);
            }
            let committed = Instant::now();
            let expected = start - change as i64 - 1;
            let shown = move |available| available <= expected;
            let deadline = committed + VISIBLE_TIMEOUT;
            match watch_zone(
                &mut edge, &path, zone, shown, committed, deadline, POLL_PAUSE,
            )
            .await
            {
                Some(latency) => visibility
                    .latency_us
                    .saturating_record(latency.as_micros().max(1) as u64),
                None => visibility.missed += 1,
            }
        }
        Ok(visibility)
    }

    async fn stop(self) -> anyhow::Result<()> {
        let links = self.links;
        for proxy in [
            links.client_edge,
            links.client_ledger,
            links.edge_ledger,
            links.edge_redis,
        ] {
            proxy.shutdown().await;
        }
        self.edge.stop().await;
        self.ledger.stop().await
    }
}

/// The address Redis listens on, from its URL (6379 when it names none).
async fn redis_socket(redis_url: &str) -> anyhow::Result<SocketAddr> {
    let url = reqwest::Url::parse(redis_url).with_context(|| format!("parsing {redis_url}"))?;
    let host = url.host_str().context("REDIS_URL names no host")?;
    let port = url.port().unwrap_or(REDIS_PORT_DEFAULT);
    let mut addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .with_context(|| format!("resolving {host}"))?;
    addresses
        .next()
        .with_context(|| format!("{host} resolves to no address"))
}

/// `redis_url` with its host and port replaced by the proxy's (password and database kept).
fn redis_through(redis_url: &str, proxy: SocketAddr) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(redis_url).with_context(|| format!("parsing {redis_url}"))?;
    url.set_host(Some(&proxy.ip().to_string()))
        .with_context(|| format!("rewriting {redis_url}"))?;
    url.set_port(Some(proxy.port()))
        .map_err(|()| anyhow::anyhow!("rewriting the port of {redis_url}"))?;
    Ok(url.to_string())
}

/// One ping-pong on a kept-alive connection: an HTTP GET, or a Redis `PING`.
enum Pinger {
    Http { client: load::Client, path: String },
    Redis(TcpStream),
}

impl Pinger {
    async fn ping(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        tokio::time::timeout(PING_TIMEOUT, self.exchange())
            .await
            .map_err(|_| anyhow::anyhow!("no answer to a ping within {PING_TIMEOUT:?}"))??;
        Ok(started.elapsed())
    }

    async fn exchange(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Http { client, path } => {
                client.send(&Call::get(0, path.clone())).await?;
            }
            Self::Redis(stream) => {
                stream.write_all(b"PING\r\n").await?;
                // Any one-line reply is the round trip (`-NOAUTH` too).
                let mut reply = Vec::new();
                while !reply.ends_with(b"\r\n") {
                    if reply.len() > REDIS_REPLY_BYTES_MAX
                        || stream.read_buf(&mut reply).await? == 0
                    {
                        bail!("Redis closed or rambled: {reply:?}");
                    }
                }
            }
        }
        Ok(())
    }
}

impl Links {
    /// Every link's added round trip, measured at once (the far links are idle most of
    /// each sample).
    /// `edge_path` is a read the edge answers from its cache.
    async fn measure(&self, edge_path: &str) -> anyhow::Result<Vec<LinkRtt>> {
        let http = |path: &str| Probe::Http(path.to_owned());
        let measured = futures_util::future::join_all([
            measure_link("buyer ↔ edge", &self.client_edge, http(edge_path)),
            measure_link("buyer ↔ ledger", &self.client_ledger, http("/health")),
            measure_link("edge ↔ ledger", &self.edge_ledger, http("/health")),
            measure_link("edge ↔ Redis", &self.edge_redis, Probe::Redis),
        ])
        .await;
        measured.into_iter().collect()
    }
}

/// What a link's ping-pong sends.
enum Probe {
    Http(String),
    Redis,
}

impl Probe {
    async fn pinger(&self, addr: SocketAddr) -> anyhow::Result<Pinger> {
        Ok(match self {
            Self::Http(path) => Pinger::Http {
                client: load::Client::new(&addr.to_string()),
                path: path.clone(),
            },
            Self::Redis => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Pinger::Redis(stream)
            }
        })
    }
}

/// `PING_SAMPLES` ping-pongs straight to the link's upstream and through the link, taking
/// turns; the difference of the medians is what the link adds (the server's own time
/// cancels out). One exchange each first: a new connection's handshake is not the RTT.
async fn measure_link(
    name: &'static str,
    proxy: &DelayProxy,
    probe: Probe,
) -> anyhow::Result<LinkRtt> {
    let mut direct = probe.pinger(proxy.upstream()).await?;
    let mut through = probe.pinger(proxy.addr()).await?;
    direct
        .ping()
        .await
        .with_context(|| format!("{name}: direct"))?;
    through
        .ping()
        .await
        .with_context(|| format!("{name}: through the link"))?;
    let (mut direct_samples, mut through_samples) = (Vec::new(), Vec::new());
    for _ in 0..PING_SAMPLES {
        direct_samples.push(direct.ping().await?);
        through_samples.push(through.ping().await?);
    }
    direct_samples.sort();
    through_samples.sort();
    Ok(LinkRtt {
        name,
        one_way: proxy.one_way(),
        direct_median: direct_samples[PING_SAMPLES / 2],
        through_median: through_samples[PING_SAMPLES / 2],
        through_min: through_samples[0],
    })
}

impl LinkRtt {
    fn configured(&self) -> Duration {
        self.one_way * 2
    }

    fn added(&self) -> Duration {
        self.through_median.saturating_sub(self.direct_median)
    }

    /// What is wrong with the link, if anything: its added round trip is not the
    /// configured one within the tolerance, or a sample was faster than the link.
    fn failure(&self, tolerance: Duration) -> Option<String> {
        let off = self.added().abs_diff(self.configured()) > tolerance;
        let early = self.through_min < self.configured();
        (off || early).then(|| {
            format!(
                "{}: adds {:.2} ms (configured {:.2} ms), fastest sample {:.2} ms",
                self.name,
                as_ms(self.added()),
                as_ms(self.configured()),
                as_ms(self.through_min)
            )
        })
    }

    fn data(&self) -> Value {
        json!({"link": self.name, "one_way_ms": as_ms(self.one_way), "configured_rtt_ms": as_ms(self.configured()),
            "added_rtt_ms": as_ms(self.added()), "direct_median_ms": as_ms(self.direct_median),
            "through_median_ms": as_ms(self.through_median), "through_min_ms": as_ms(self.through_min)})
    }
}

fn as_ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn check_links(section: &mut Section, links: &[LinkRtt], quick: bool) {
    let tolerance = if quick {
        RTT_TOLERANCE_QUICK
    } else {
        RTT_TOLERANCE
    };
    let failures: Vec<String> = links.iter().filter_map(|l| l.failure(tolerance)).collect();
    let added: Vec<String> = links
        .iter()
        .map(|l| format!("{} {:.2} ms", l.name, as_ms(l.added())))
        .collect();
    section.check_failures(
        &format!(
            "every link adds its round trip ± {} ms (median of {PING_SAMPLES} ping-pongs), none faster",
            tolerance.as_millis()
        ),
        &failures,
        added.join(", "),
    );
}

/// Each zone: its counters against its rows and the 201s the buyers were answered.
async fn audit(
    section: &mut Section,
    world: &World,
    runs: &Runs,
    plan: &Plan,
) -> anyhow::Result<()> {
    let changes = plan.geo_changes as u64;
    let zones = [
        (ZONE_EDGE_HOLDS, "holds through the edge", runs.edge_granted),
        (ZONE_DIRECT_HOLDS, "holds direct", runs.direct_granted),
        (ZONE_VISIBLE, "visibility changes", changes),
    ];
    let mut failures = Vec::new();
    for (zone, what, granted) in zones {
        let audit = ZoneAudit::read(&world.ledger.pool, &world.ids.zone_ids[zone]).await?;
        // One ticket per hold: as many tickets as 201s.
        failures.extend(
            audit
                .holds_error(granted, granted)
                .map(|e| format!("{what}: {e}")),
        );
    }
    section.check_failures(
        "zero oversell: each zone's counters = its rows = the 201s answered",
        &failures,
        format!(
            "{ZONES} zones audited ({} + {} + {changes} holds)",
            count(runs.edge_granted as f64),
            count(runs.direct_granted as f64)
        ),
    );
    Ok(())
}

fn goals(section: &mut Section, runs: &Runs) {
    let (edge, direct) = (runs.browse_edge.p50_ms, runs.browse_direct.p50_ms);
    section.goal(
        "geo.browse_p50",
        &format!("browse p50 through the edge ≤ {GOAL_BROWSE_EDGE_P50_MS} ms while straight to the ledger ≥ {GOAL_BROWSE_DIRECT_P50_MS} ms"),
        format!("{} ms through the edge, {} ms direct", ms(edge), ms(direct)),
        edge <= GOAL_BROWSE_EDGE_P50_MS && direct >= GOAL_BROWSE_DIRECT_P50_MS,
    );
    let (edge, direct) = (runs.hold_edge.p50_ms, runs.hold_direct.p50_ms);
    section.goal(
        "geo.hold_overhead",
        &format!("hold p50 through the edge ≤ direct + {GOAL_HOLD_OVERHEAD_MS} ms (no extra round trips)"),
        format!(
            "{} vs {} ms direct (+{} ms; edge ↔ ledger RTT {} ms)",
            ms(edge),
            ms(direct),
            ms(edge - direct),
            ms(as_ms(FAR_ONE_WAY * 2))
        ),
        runs.hold_edge.ok > 0 && edge <= direct + GOAL_HOLD_OVERHEAD_MS,
    );
}

fn notes(plan: &Plan) -> Vec<String> {
    vec![
        format!(
            "The links, each a delaying TCP proxy (the test kit's `DelayProxy`; this kernel has no netem): buyer ↔ edge {} ms one way, \
             buyer ↔ ledger, edge ↔ ledger and edge ↔ Redis {} ms one way (80 ms round trips). The edge's `ledger_url` (and so its allowed outbound host) \
             and its Redis address point at its far links, so forwarded holds, cache fills and invalidations all cross the distance; the ledger publishes to Redis locally. \
             Every chunk is released exactly its delay after it arrived, pipelined, in order, with no bandwidth limit; a new connection's first bytes also wait for the \
             round trip its TCP handshake would take, so opening a connection per request costs what it costs on the wire.",
            NEAR_ONE_WAY.as_millis(),
            FAR_ONE_WAY.as_millis()
        ),
        format!(
            "Browsing: {CLIENTS} closed-loop buyers for {:.1} s reading the event's detail and its show's availability (both cached at the edge), \
             through the edge, then straight to the ledger. Holds: {CLIENTS} closed-loop buyers of one ticket each, the same way: latency figures at a modest rate, \
             not throughput. Connections are kept alive and opened during a {} ms warm-up.",
            plan.geo_window.as_secs_f64(),
            WARMUP.as_millis()
        ),
        format!(
            "Commit → visible: {} changes, one at a time: a 1-ticket hold sent to the ledger on loopback (its 201 marks the commit), then the edge polled through \
             the buyer's link ({} µs apart) until it shows the new count. The path: commit → outbox → relay → Redis → {} ms → the edge's invalidator; \
             the poll's answer adds the buyer link's {} ms back.",
            plan.geo_changes,
            POLL_PAUSE.as_micros(),
            FAR_ONE_WAY.as_millis(),
            NEAR_ONE_WAY.as_millis()
        ),
        "The link check compares, per link, ping-pongs straight to its upstream with ping-pongs through it, taking turns on kept-alive connections \
         (an HTTP GET for the edge and the ledger, `PING` for Redis): the difference of the medians is the round trip the link adds."
            .to_owned(),
    ]
}

fn latency_table(runs: &Runs) -> Table {
    let mut table = Table::new(
        "From the buyer: through the edge vs straight to the ledger (ms)",
        &["request", "path", "answered", "errors", "p50", "p99", "max"],
    );
    let rows = [
        ("browse", "through the edge", &runs.browse_edge),
        ("browse", "straight to the ledger", &runs.browse_direct),
        ("hold", "through the edge", &runs.hold_edge),
        ("hold", "straight to the ledger", &runs.hold_direct),
    ];
    for (request, path, figures) in rows {
        table.row(vec![
            request.to_owned(),
            path.to_owned(),
            count((figures.ok + figures.refused) as f64),
            count(figures.failed as f64),
            ms(figures.p50_ms),
            ms(figures.p99_ms),
            ms(figures.max_ms),
        ]);
    }
    table
}

fn links_table(measured: &[LinkRtt], links: &Links) -> Table {
    let mut table = Table::new(
        "The links: configured, and measured by ping-pong (ms)",
        &[
            "link",
            "one way",
            "round trip",
            "added (median)",
            "fastest through",
            "connections",
        ],
    );
    let proxies = [
        &links.client_edge,
        &links.client_ledger,
        &links.edge_ledger,
        &links.edge_redis,
    ];
    for (link, proxy) in measured.iter().zip(proxies) {
        table.row(vec![
            link.name.to_owned(),
            ms(as_ms(link.one_way)),
            ms(as_ms(link.configured())),
            ms(as_ms(link.added())),
            ms(as_ms(link.through_min)),
            count(proxy.accepted() as f64),
        ]);
    }
    table
}

impl Visibility {
    fn q(&self, p: f64) -> f64 {
        quantile_ms(&self.latency_us, p)
    }

    fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }

    fn table(&self, plan: &Plan) -> Table {
        let mut table = Table::new(
            "Commit at the ledger → visible at the remote edge (ms)",
            &["changes", "p50", "p99", "max", "missed (> 5 s)"],
        );
        table.row(vec![
            count(plan.geo_changes as f64),
            ms(self.q(0.5)),
            ms(self.q(0.99)),
            ms(self.max_ms()),
            count(self.missed as f64),
        ]);
        table
    }

    fn data(&self, plan: &Plan) -> Value {
        json!({"changes": plan.geo_changes, "missed": self.missed, "p50_ms": self.q(0.5),
            "p99_ms": self.q(0.99), "max_ms": self.max_ms()})
    }
}

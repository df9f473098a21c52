//! The load generator: plain HTTP/1.1 keep-alive connections (hyper's connection API, no
//! pooling or URL machinery: the generator shares two cores with what it measures), driven
//! either closed-loop (N clients, each sending its next request when the last is answered:
//! "N concurrent buyers") or open-loop (a fixed arrival rate, as in softwaremill/tb-perf:
//! requests are due at fixed times whether or not earlier ones were answered; latency is
//! measured from when a request was due, and requests that could not be sent on time are
//! counted as late, so a stalled server cannot hide behind a stalled generator).
//! Latencies go to HDR histograms (µs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore, SemaphorePermit};

use crate::report::count;

/// Highest latency the histograms track: 60 s in µs, 3 significant digits.
const LATENCY_MAX_US: u64 = 60_000_000;
/// An open-loop request dispatched later than this after it was due counts as late (the
/// timer wakes up to ~1 ms late, and a loaded 2-core machine adds a few ms of jitter).
const LATE_AFTER: Duration = Duration::from_millis(5);

#[allow(
    clippy::expect_used,
    reason = "constant bounds, checked by every test that records"
)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant, valid histogram bounds")
}

/// The latency at quantile `q` (0.99 = p99) of a histogram in µs, in ms.
pub fn quantile_ms(latency_us: &Histogram<u64>, q: f64) -> f64 {
    latency_us.value_at_quantile(q) as f64 / 1000.0
}

/// One request to send.
pub struct Call {
    /// Index into the runner's targets.
    pub target: usize,
    pub method: hyper::Method,
    pub path_and_query: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
    /// The workload's own note on the call (e.g. the quantity asked for).
    pub tag: u64,
}

impl Call {
    pub fn get(target: usize, path: impl Into<String>) -> Self {
        Self {
            target,
            method: hyper::Method::GET,
            path_and_query: path.into(),
            headers: Vec::new(),
            body: None,
            tag: 0,
        }
    }

    pub fn post_json(target: usize, path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            target,
            method: hyper::Method::POST,
            path_and_query: path.into(),
            headers: vec![("content-type", "application/json".to_owned())],
            body: Some(Bytes::from(body.to_string())),
            tag: 0,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response, read in full.
pub struct Answer {
    pub status: u16,
    /// `Tessera-Served-By: edge` (the edge answered without the ledger).
    pub served_by_edge: bool,
    pub body: Bytes,
}

/// What a workload makes of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted as done work (throughput) and its latency recorded.
    Ok,
    /// An expected refusal (e.g. sold out): counted, latency recorded apart.
    Refused,
    /// Anything else (5xx, unexpected 4xx): counted as an error.
    Failed,
}

/// What to send and how to judge answers. Implementations keep their own state (atomics).
pub trait Workload: Send + Sync + 'static {
    /// The `n`-th request of client `client` (closed loop) or of the run (open loop, client
    /// 0). `None` ends that client (closed loop) or skips the slot (open loop).
    fn next(&self, client: usize, n: u64) -> Option<Call>;
    /// Judges an answer that took `latency`. `measured` is false during warm-up.
    fn judge(&self, call: &Call, answer: &Answer, latency: Duration, measured: bool) -> Verdict;
}

/// Figures of one run (or several slices of the same configuration, absorbed).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub ok: u64,
    pub refused: u64,
    pub failed: u64,
    /// Answered 409 by the edge itself (`Tessera-Served-By: edge`).
    pub edge_answered: u64,
    /// Open loop: requests sent more than 5 ms after they were due, or that had to wait for a
    /// free connection (counted once if both).
    pub late: u64,
    /// Of `late`: taken up by the generator more than 5 ms after they were due (the
    /// generator's own delay: its timer or its tasks not run in time).
    pub late_dispatched: u64,
    /// Of `late`: had to wait for a free connection (every one busy with an unanswered
    /// request: the server behind).
    pub late_waited: u64,
    /// Open loop: requests due in the window.
    pub due: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub elapsed_s: f64,
    pub ok_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    #[serde(skip)]
    pub latency_us: Histogram<u64>,
}

impl Figures {
    fn empty() -> Self {
        Self {
            ok: 0,
            refused: 0,
            failed: 0,
            edge_answered: 0,
            late: 0,
            late_dispatched: 0,
            late_waited: 0,
            due: 0,
            by_status: BTreeMap::new(),
            elapsed_s: 0.0,
            ok_per_s: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            latency_us: histogram(),
        }
    }

    fn finish(mut self) -> Self {
        let ms = |q: f64| quantile_ms(&self.latency_us, q);
        (self.p50_ms, self.p99_ms, self.p999_ms) = (ms(0.5), ms(0.99), ms(0.999));
        self.max_ms = self.latency_us.max() as f64 / 1000.0;
        self.ok_per_s = if self.elapsed_s > 0.0 {
            self.ok as f64 / self.elapsed_s
        } else {
            0.0
        };
        self
    }

    /// The late sends with their causes, for a report's cell: "37 (37 taken up late, 0
    /// waited)".
    pub fn late_by_cause(&self) -> String {
        if self.late == 0 {
            return "0".to_owned();
        }
        format!(
            "{} ({} taken up late, {} waited)",
            count(self.late as f64),
            count(self.late_dispatched as f64),
            count(self.late_waited as f64)
        )
    }

    /// Adds another slice of the same configuration.
    pub fn absorb(self, other: &Figures) -> anyhow::Result<Self> {
        let mut merged = self;
        merged
            .latency_us
            .add(&other.latency_us)
            .context("merging histograms")?;
        merged.ok += other.ok;
        merged.refused += other.refused;
        merged.failed += other.failed;
        merged.edge_answered += other.edge_answered;
        merged.late += other.late;
        merged.late_dispatched += other.late_dispatched;
        merged.late_waited += other.late_waited;
        merged.due += other.due;
        merged.elapsed_s += other.elapsed_s;
        for (status, n) in &other.by_status {
            *merged.by_status.entry(*status).or_default() += n;
        }
        Ok(merged.finish())
    }
}

/// Where requests go: `host:port` per target.
#[derive(Clone)]
pub struct Targets(pub Arc<Vec<String>>);

impl Targets {
    pub fn new(authorities: Vec<String>) -> Self {
        Self(Arc::new(authorities))
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// No request may stall a run (and CI with it): one answered later than this is a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn send(sender: &mut Sender, authority: &str, call: &Call) -> anyhow::Result<Answer> {
    tokio::time::timeout(REQUEST_TIMEOUT, send_unbounded(sender, authority, call))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {authority} within {REQUEST_TIMEOUT:?}"))?
}

/// `call` as an HTTP/1.1 request to `authority`.
fn request_of(authority: &str, call: &Call) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let mut request = hyper::Request::builder()
        .method(call.method.clone())
        .uri(call.path_and_query.as_str())
        .header(hyper::header::HOST, authority);
    for (name, value) in &call.headers {
        request = request.header(*name, value.as_str());
    }
    Ok(request.body(Full::new(call.body.clone().unwrap_or_default()))?)
}

async fn send_unbounded(
    sender: &mut Sender,
    authority: &str,
    call: &Call,
) -> anyhow::Result<Answer> {
    let request = request_of(authority, call)?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let served_by_edge = response
        .headers()
        .get("tessera-served-by")
        .is_some_and(|v| v.as_bytes() == b"edge");
    // Read the whole body so the connection can carry the next request.
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        served_by_edge,
        body,
    })
}

/// One request on a connection of its own, for setup and probes.
pub async fn once(authority: &str, call: &Call) -> anyhow::Result<Answer> {
    let mut sender = connect(authority).await?;
    send(&mut sender, authority, call).await
}

/// A connection that reconnects after a transport error.
pub struct Client {
    authority: String,
    sender: Option<Sender>,
}

impl Client {
    pub fn new(authority: &str) -> Self {
        Self {
            authority: authority.to_owned(),
            sender: None,
        }
    }

    /// Sends `call`. A kept-alive connection the server has closed meanwhile (idle
    /// timeout) fails before anything was answered; like any HTTP client, the call is then
    /// sent once more on a fresh connection. That is safe for every call the scenarios
    /// make: reads, holds and confirms carry an Idempotency-Key, releases are idempotent.
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Answer> {
        if let Some(sender) = &mut self.sender {
            match send(sender, &self.authority, call).await {
                Ok(answer) => return Ok(answer),
                Err(_) => self.sender = None,
            }
        }
        let sender = self.sender.insert(connect(&self.authority).await?);
        let answer = send(sender, &self.authority, call).await;
        if answer.is_err() {
            self.sender = None;
        }
        answer
    }
}

fn tally(figures: &mut Figures, verdict: Verdict, answer: &Answer, latency: Duration) {
    *figures.by_status.entry(answer.status).or_default() += 1;
    if answer.served_by_edge && answer.status == 409 {
        figures.edge_answered += 1;
    }
    match verdict {
        Verdict::Ok => {
            figures.ok += 1;
            figures
                .latency_us
                .saturating_record(latency.as_micros().max(1) as u64);
        }
        Verdict::Refused => figures.refused += 1,
        Verdict::Failed => figures.failed += 1,
    }
}

/// A closed-loop client whose connection failed waits this long before the next request:
/// a refused connection would otherwise spin.
const RECONNECT_PAUSE: Duration = Duration::from_millis(5);
/// How often a closed-loop run looks whether every client has ended before its deadline.
const END_POLL: Duration = Duration::from_millis(2);

/// `clients` closed-loop clients (client `i` on target `i % targets`, unless the workload's
/// calls say otherwise) for `warmup + measure`, or until every client's workload ends. The
/// window closes early when all clients have ended; `elapsed_s` is then the time until the
/// last successful answer.
pub async fn closed_loop<W: Workload>(
    targets: &Targets,
    workload: Arc<W>,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<Figures> {
    let measuring = Arc::new(AtomicBool::new(warmup.is_zero()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let conns: Vec<Client> = targets.0.iter().map(|a| Client::new(a)).collect();
        let (workload, measuring, stop) = (workload.clone(), measuring.clone(), stop.clone());
        tasks.push(tokio::spawn(closed_client(
            client, conns, workload, measuring, stop,
        )));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + measure;
    // Stop at the deadline, or earlier once every client has ended on its own.
    while Instant::now() < deadline && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(END_POLL.min(deadline - Instant::now())).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut figures = Figures::empty();
    let mut last = None::<Instant>;
    for task in tasks {
        let (part, last_ok) = task.await?;
        figures = figures.absorb(&part)?;
        last = last.max(last_ok);
    }
    let window_end = if Instant::now() >= deadline {
        deadline
    } else {
        last.unwrap_or(started)
    };
    figures.elapsed_s = window_end.saturating_duration_since(started).as_secs_f64();
    Ok(figures.finish())
}

/// Closed-loop client `client`: its next request once the last is answered, until `stop`
/// or its workload ends. Its figures (answers while `measuring` only), and when it last
/// had an `Ok`.
async fn closed_client<W: Workload>(
    client: usize,
    mut conns: Vec<Client>,
    workload: Arc<W>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> (Figures, Option<Instant>) {
    let mut figures = Figures::empty();
    let mut last_ok: Option<Instant> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let Some(call) = workload.next(client, n) else {
            break;
        };
        let started = Instant::now();
        let measured = measuring.load(Ordering::Relaxed);
        let slot = call.target % conns.len();
        match conns[slot].send(&call).await {
            Ok(answer) => {
                let latency = started.elapsed();
                let verdict = workload.judge(&call, &answer, latency, measured);
                if measured {
                    tally(&mut figures, verdict, &answer, latency);
                    if verdict == Verdict::Ok {
                        last_ok = Some(Instant::now());
                    }
                }
            }
            Err(_) => {
                figures.failed += u64::from(measured);
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    (figures, last_ok)
}

/// Open loop: `rate_per_s` requests due at fixed intervals for `duration`, each sent on
/// an idle connection to its target (up to `connections_max` per target; a request that
/// finds none waits, and is late). Latency runs from when the request was due.
pub async fn open_loop<W: Workload>(
    targets: &Targets,
    workload: Arc<W>,
    rate_per_s: f64,
    duration: Duration,
    connections_max: usize,
) -> anyhow::Result<Figures> {
    let pools: Arc<Vec<Pool>> = Arc::new(
        targets
            .0
            .iter()
            .map(|authority| Pool::new(authority, connections_max))
            .collect(),
    );
    let figures = Arc::new(std::sync::Mutex::new(Figures::empty()));
    let interval = Duration::from_secs_f64(1.0 / rate_per_s.max(0.001));
    let due_total = (duration.as_secs_f64() * rate_per_s).round() as u64;
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..due_total {
        let due_at = started + interval.mul_f64(n as f64);
        if tokio::time::Instant::now() < due_at {
            tokio::time::sleep_until(due_at).await;
        }
        let Some(call) = workload.next(0, n + 1) else {
            continue;
        };
        let (pools, workload, figures) = (pools.clone(), workload.clone(), figures.clone());
        tasks.spawn(async move {
            let pool = &pools[call.target % pools.len()];
            send_due(pool, &*workload, &figures, call, due_at).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let mut figures = std::mem::replace(
        &mut *figures
            .lock()
            .map_err(|_| anyhow::anyhow!("a load task panicked"))?,
        Figures::empty(),
    );
    figures.elapsed_s = elapsed.as_secs_f64();
    Ok(figures.finish())
}

/// An open-loop target's connections: idle ones kept for reuse, at most `permits` in use.
struct Pool {
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
    authority: String,
}

impl Pool {
    fn new(authority: &str, connections_max: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(connections_max),
            authority: authority.to_owned(),
        }
    }

    /// A permit and a connection (idle, or new), and whether it had to wait for the
    /// permit (every connection busy). `None` if the pool is closed.
    async fn take(&self) -> Option<(SemaphorePermit<'_>, Client, bool)> {
        let (permit, waited) = match self.permits.try_acquire() {
            Ok(permit) => (permit, false),
            Err(_) => (self.permits.acquire().await.ok()?, true),
        };
        let client = self
            .idle
            .lock()
            .await
            .pop()
            .unwrap_or_else(|| Client::new(&self.authority));
        Some((permit, client, waited))
    }
}

/// One open-loop request, due at `due_at`: sent on a connection of `pool`, judged, and
/// tallied into `figures`, late if sent more than `LATE_AFTER` after it was due or if it
/// had to wait for a connection.
async fn send_due<W: Workload>(
    pool: &Pool,
    workload: &W,
    figures: &std::sync::Mutex<Figures>,
    call: Call,
    due_at: tokio::time::Instant,
) {
    let dispatched_late = due_at.elapsed() > LATE_AFTER;
    let Some((permit, mut client, waited)) = pool.take().await else {
        return;
    };
    let answer = client.send(&call).await;
    let latency = due_at.elapsed();
    pool.idle.lock().await.push(client);
    drop(permit);
    let Ok(mut figures) = figures.lock() else {
        return;
    };
    figures.due += 1;
    figures.late += u64::from(dispatched_late || waited);
    figures.late_dispatched += u64::from(dispatched_late);
    figures.late_waited += u64::from(waited);
    match answer {
        Ok(answer) => {
            let verdict = workload.judge(&call, &answer, latency, true);
            tally(&mut figures, verdict, &answer, latency);
        }
        Err(_) => figures.failed += 1,
    }
}

/// A request's answer with the headers a scenario reads (the generator's own connections
/// read none), and how long it took.
pub struct Probed {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub latency: Duration,
}

impl Probed {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the edge answered it (`Tessera-Served-By: edge`).
    pub fn by_edge(&self) -> bool {
        self.header("tessera-served-by") == Some("edge")
    }

    /// The `dur` of `metric` in the answer's `Server-Timing` (milliseconds there), in µs.
    pub fn timing_us(&self, metric: &str) -> Option<f64> {
        self.header("server-timing")?.split(',').find_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            if parts.next()? != metric {
                return None;
            }
            let dur = parts.find_map(|param| param.strip_prefix("dur="))?;
            dur.trim_matches('"')
                .parse::<f64>()
                .ok()
                .map(|ms| ms * 1_000.0)
        })
    }
}

/// One kept-alive HTTP/1.1 connection to `authority` that keeps the answers' headers. A
/// connection the server closed meanwhile fails before anything was answered; the call is
/// then sent once more on a fresh one, so send only calls that are safe to repeat (reads,
/// keyed writes, scans with their nonce).
pub struct KeptConnection {
    authority: String,
    sender: Option<Sender>,
}

impl KeptConnection {
    pub fn new(authority: &str) -> Self {
        Self {
            authority: authority.to_owned(),
            sender: None,
        }
    }

    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Probed> {
        if let Some(sender) = &mut self.sender {
            match probe(sender, &self.authority, call).await {
                Ok(probed) => return Ok(probed),
                Err(_) => self.sender = None,
            }
        }
        let sender = self.sender.insert(connect(&self.authority).await?);
        let probed = probe(sender, &self.authority, call).await;
        if probed.is_err() {
            self.sender = None;
        }
        probed
    }
}

async fn probe(sender: &mut Sender, authority: &str, call: &Call) -> anyhow::Result<Probed> {
    let started = Instant::now();
    let round_trip = async {
        let request = request_of(authority, call)?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, headers, body))
    };
    let (status, headers, body) = tokio::time::timeout(REQUEST_TIMEOUT, round_trip)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {authority} within {REQUEST_TIMEOUT:?}"))??;
    Ok(Probed {
        status,
        headers,
        body,
        latency: started.elapsed(),
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// A server on loopback that answers every request after `answer_after`.
    async fn serve_after(answer_after: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let authority = listener.local_addr().expect("its address").to_string();
        let app = axum::Router::new().fallback(move || async move {
            tokio::time::sleep(answer_after).await;
            "ok"
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        authority
    }

    /// GETs, each made `making_takes` after it was asked for: a generator that stalls.
    struct Gets {
        making_takes: Duration,
    }

    impl Workload for Gets {
        fn next(&self, _client: usize, _n: u64) -> Option<Call> {
            std::thread::sleep(self.making_takes);
            Some(Call::get(0, "/"))
        }

        fn judge(&self, _: &Call, answer: &Answer, _: Duration, _: bool) -> Verdict {
            if answer.status == 200 {
                Verdict::Ok
            } else {
                Verdict::Failed
            }
        }
    }

    #[tokio::test]
    async fn late_sends_are_told_apart_by_cause() {
        // A server answering in 20 ms on one connection, 200 requests/s due: the generator
        // is on time, and the requests wait for the connection.
        let slow = Targets::new(vec![serve_after(Duration::from_millis(20)).await]);
        let gets = Arc::new(Gets {
            making_takes: Duration::ZERO,
        });
        let figures = open_loop(&slow, gets, 200.0, Duration::from_millis(200), 1)
            .await
            .expect("a run");
        assert_eq!((figures.due, figures.failed), (40, 0));
        assert!(figures.late_waited >= 30, "{figures:?}");
        assert!(figures.late >= figures.late_waited, "{figures:?}");

        // An instant server and connections to spare, but the generator takes 10 ms to make
        // each request due every 1 ms: it is the one late.
        let fast = Targets::new(vec![serve_after(Duration::ZERO).await]);
        let stalling = Arc::new(Gets {
            making_takes: Duration::from_millis(10),
        });
        let figures = open_loop(&fast, stalling, 1_000.0, Duration::from_millis(100), 128)
            .await
            .expect("a run");
        assert_eq!((figures.due, figures.failed), (100, 0));
        assert!(figures.late_dispatched >= 90, "{figures:?}");
        assert_eq!(figures.late_waited, 0, "{figures:?}");
        assert_eq!(figures.late, figures.late_dispatched, "{figures:?}");
        assert_eq!(
            figures.late_by_cause(),
            format!(
                "{} ({} taken up late, 0 waited)",
                figures.late, figures.late
            )
        );
    }

    #[test]
    fn server_timing_durations_are_read_in_microseconds() {
        let probed = |header: &str| Probed {
            status: 200,
            headers: hyper::HeaderMap::from_iter([(
                hyper::header::HeaderName::from_static("server-timing"),
                hyper::header::HeaderValue::from_str(header).expect("a header value"),
            )]),
            body: Bytes::new(),
            latency: Duration::ZERO,
        };
        assert_eq!(probed("verify;dur=0.042").timing_us("verify"), Some(42.0));
        assert_eq!(
            probed("cache;desc=\"hit\", verify;dur=1.5").timing_us("verify"),
            Some(1_500.0)
        );
        assert_eq!(probed("pass;dur=0.012").timing_us("pass"), Some(12.0));
        assert_eq!(probed("verify").timing_us("verify"), None);
        assert_eq!(probed("db;dur=3").timing_us("verify"), None);
    }
}

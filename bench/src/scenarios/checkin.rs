//! Scenario 10: ticket check-in at the door (`checkin.*`). One event, a ledger and two edge
//! nodes in front of it, 32 gate credentials (`Door 0` … `Door 31`), its tickets bought as a
//! buyer does (a hold, then its confirmation). Three measurements, in this order:
//!
//! - `checkin.revocation_latency`: orders of one ticket cancelled at the ledger one at a
//!   time; from each cancellation's answer, both edges are scanned with the voided code every
//!   ~2 ms (a fresh nonce each) until each answers `revoked` itself (pushed by the ledger's
//!   `revocation` message, patched into the node's cached set).
//! - `checkin.edge_verify`: closed-loop scanners on one edge, first with the codes just
//!   voided (answered at the edge: credential and code signatures, the revoked set), then
//!   with valid codes, each redeemed once (verified, forwarded, redeemed by the ledger). The
//!   component says how long it verified in `Server-Timing: verify;dur=<ms>`; the load
//!   generator's connections do not expose answer headers, so this scenario scans through
//!   a connection of its own ([`Scanner`], the same hyper HTTP/1.1 client API).
//! - `checkin.doors`: 32 gates scanning the same tickets twice each, concurrently, through
//!   the two edges: exactly one `ok` and one `already_redeemed` per ticket, counted from the
//!   answers and again from the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::load::{
    self, histogram, quantile_ms, Answer, Call, Figures, KeptConnection, Verdict, Workload,
};
use crate::report::{count, ms, Section, Table};
use crate::scenarios::Stand;
use crate::stack::{Env, EventIds, Ledger};
use crate::{Plan, Progress};

/// Edge nodes in front of the ledger: the doors scan through both, revocations reach both.
const EDGES: usize = 2;
/// Gates, one credential each: the 32 doors.
const GATES: usize = 32;
/// Tickets bought per order (the zone allows it; the API's most is 100).
const TICKETS_PER_ORDER: usize = 100;
/// Closed-loop scanners on each path of the edge-verify comparison (as many as doors).
const VERIFY_CLIENTS: usize = 32;
/// The goal: verification is under this share of an edge-answered request's time…
const GOAL_VERIFY_SHARE: f64 = 0.10;
/// …and a voided ticket is refused at every edge within this long (p99).
const GOAL_REVOCATION_P99_MS: f64 = 50.0;
/// Pause between two scans of one edge waiting for a revocation (the issue's ~2 ms).
const REVOCATION_POLL: Duration = Duration::from_millis(2);
/// A voided code not refused at an edge after this long counts as missed…
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);
/// …and no edge is scanned more than this often for one cancellation.
const REVOCATION_POLLS_MAX: u32 = 2_500;
/// Every door scan must be answered within this long (the run ends earlier, when done).
const DOORS_DEADLINE: Duration = Duration::from_secs(300);
/// A scanner sends at most this many scans in a window (time ends it long before).
const SCANS_PER_CLIENT_MAX: u64 = 10_000_000;
/// A scanner whose connection failed waits this long before the next scan.
const RECONNECT_PAUSE: Duration = Duration::from_millis(5);
/// The Server Timing metric the check-in component reports.
const VERIFY_METRIC: &str = "verify";

/// The paths of the edge-verify comparison.
const PATHS: [&str; 2] = [
    "answered at the edge (revoked codes)",
    "redeemed by the ledger (valid codes, via the edge)",
];

/// A gate's credential, as its scanners present it.
#[derive(Clone)]
struct Credential {
    gate: String,
    token: String,
}

/// A ticket as its confirmation lists it.
#[derive(Clone, Deserialize)]
struct Ticket {
    ticket_id: String,
    code: String,
}

/// A confirmed order.
struct Order {
    hold_id: String,
    tickets: Vec<Ticket>,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("checkin", "10. Ticket check-in at the door");
    progress.step("checkin: starting a ledger and 2 edges");
    let stand = Stand::start(env, "checkin", EDGES).await?;
    let measured = measure(env, plan, progress, &stand).await;
    let stopped = stand.stop().await;
    let measured = measured?;
    stopped?;
    report(&mut section, plan, &measured);
    Ok(section)
}

/// Every figure of the scenario, from one stand.
struct Measured {
    revocations: Revocations,
    paths: [PathFigures; 2],
    /// The redeem path ran out of valid codes before its window ended.
    redeem_exhausted: bool,
    doors: DoorsRun,
}

async fn measure(
    env: &Env,
    plan: &Plan,
    progress: &Progress,
    stand: &Stand,
) -> anyhow::Result<Measured> {
    progress.step(&format!(
        "checkin: buying tickets, issuing {GATES} gate credentials"
    ));
    let setup = Setup::prepare(env, plan, stand).await?;
    progress.step(&format!(
        "checkin: voiding {} orders one at a time",
        setup.voided.len()
    ));
    let revocations = revocation_latency(env, stand, &setup.gates[0], &setup.voided).await?;
    progress.step("checkin: edge verification vs ledger redeems");
    let authority = &stand.edges[0].authority;
    let revoked: Vec<String> = setup
        .voided
        .iter()
        .flat_map(|o| o.tickets.iter().map(|t| t.code.clone()))
        .collect();
    let at_edge = ScanPath {
        tag: "v",
        codes: Codes::Cycle(revoked),
        expected: Expected::REVOKED_AT_EDGE,
    };
    let at_edge = scan_path(authority, &setup.gates, at_edge, plan).await?;
    let valid = setup.redeem.iter().map(|t| t.code.clone()).collect();
    let redeem = ScanPath {
        tag: "l",
        codes: Codes::Once(valid, AtomicUsize::new(0)),
        expected: Expected::REDEEMED,
    };
    let redeem = scan_path(authority, &setup.gates, redeem, plan).await?;
    progress.step(&format!(
        "checkin: {GATES} doors scanning {} tickets twice each",
        count(setup.doors.len() as f64)
    ));
    let doors = doors(stand, &setup).await?;
    Ok(Measured {
        revocations,
        redeem_exhausted: redeem.exhausted,
        paths: [at_edge, redeem],
        doors,
    })
}

/// The event, its gates and the tickets each measurement uses (all bought before any is
/// measured).
struct Setup {
    gates: Arc<Vec<Credential>>,
    /// Orders of one ticket, cancelled one at a time (their codes stay revoked).
    voided: Vec<Order>,
    /// Valid codes for the ledger-redeem path, each scanned once.
    redeem: Vec<Ticket>,
    /// The tickets every door scans twice.
    doors: Vec<Ticket>,
}

impl Setup {
    async fn prepare(env: &Env, plan: &Plan, stand: &Stand) -> anyhow::Result<Self> {
        let ledger = &stand.ledger;
        let capacity =
            plan.checkin_tickets + plan.checkin_redeem_tickets + plan.checkin_cancellations;
        let zone = json!({"name": "Floor", "price_minor": 4000, "currency": "EUR",
                          "capacity": capacity, "max_per_order": TICKETS_PER_ORDER});
        let ids = ledger.create_event_with(env, "checkin", vec![zone]).await?;
        let mut voided = Vec::with_capacity(plan.checkin_cancellations);
        for n in 0..plan.checkin_cancellations {
            voided.push(buy(env, ledger, &ids, 1, &format!("void-{n}")).await?);
        }
        let doors = buy_tickets(env, ledger, &ids, plan.checkin_tickets, "door").await?;
        let redeem = buy_tickets(env, ledger, &ids, plan.checkin_redeem_tickets, "redeem").await?;
        let mut gates = Vec::with_capacity(GATES);
        for g in 0..GATES {
            let gate = format!("Door {g}");
            let path = format!("/admin/v1/events/{}/gates", ids.event_id);
            let issued = ledger
                .admin_post(env, &path, &json!({"gate": gate}))
                .await?;
            let token = issued["token"]
                .as_str()
                .context("a gate credential's token")?;
            gates.push(Credential {
                gate,
                token: token.to_owned(),
            });
        }
        // As a door's scanner does before the doors open: every node caches the keys.
        let keys = format!("/v1/events/{}/checkin-keys", ids.event_id);
        for edge in &stand.edges {
            let url = edge.url(&keys);
            env.http
                .get(&url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("GET {url}"))?;
        }
        Ok(Self {
            gates: Arc::new(gates),
            voided,
            redeem,
            doors,
        })
    }
}

/// `tickets` tickets in orders of up to [`TICKETS_PER_ORDER`].
async fn buy_tickets(
    env: &Env,
    ledger: &Ledger,
    ids: &EventIds,
    tickets: usize,
    tag: &str,
) -> anyhow::Result<Vec<Ticket>> {
    let mut bought = Vec::with_capacity(tickets);
    for n in 0..tickets.div_ceil(TICKETS_PER_ORDER) {
        let quantity = TICKETS_PER_ORDER.min(tickets - bought.len());
        let order = buy(env, ledger, ids, quantity, &format!("{tag}-{n}")).await?;
        bought.extend(order.tickets);
    }
    Ok(bought)
}

/// One order of `quantity` tickets: a hold, then its confirmation, as a buyer's.
async fn buy(
    env: &Env,
    ledger: &Ledger,
    ids: &EventIds,
    quantity: usize,
    customer: &str,
) -> anyhow::Result<Order> {
    let hold = json!({"show_id": ids.show_id, "zone_id": ids.zone_ids[0],
                      "quantity": quantity, "customer_id": customer});
    let hold = post_idempotent(env, &format!("{}/v1/holds", ledger.base), &hold).await?;
    let hold_id = hold["hold_id"].as_str().context("a hold's hold_id")?;
    let confirm = format!("{}/v1/holds/{hold_id}/confirm", ledger.base);
    let payment = json!({"payment_ref": format!("bench-{customer}")});
    let confirmed = post_idempotent(env, &confirm, &payment).await?;
    let tickets: Vec<Ticket> = serde_json::from_value(confirmed["tickets"].clone())
        .with_context(|| format!("the tickets of {confirm}"))?;
    anyhow::ensure!(
        tickets.len() == quantity,
        "{confirm}: {} tickets for an order of {quantity}",
        tickets.len()
    );
    Ok(Order {
        hold_id: hold_id.to_owned(),
        tickets,
    })
}

/// `POST url` with a fresh `Idempotency-Key`: the JSON answer, or an error naming the status.
async fn post_idempotent(env: &Env, url: &str, body: &Value) -> anyhow::Result<Value> {
    let response = env
        .http
        .post(url)
        .header("idempotency-key", uuid::Uuid::new_v4().simple().to_string())
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("POST {url}: reading the answer"))?;
    anyhow::ensure!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).with_context(|| format!("POST {url}: not JSON: {text}"))
}

/// `{"code", "gate", "nonce"}`, serialized.
fn scan_body(code: &str, gate: &str, nonce: &str) -> Bytes {
    Bytes::from(json!({"code": code, "gate": gate, "nonce": nonce}).to_string())
}

/// `result` of a verdict (empty if the answer is not one).
fn verdict_result(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Reply {
        result: String,
    }
    serde_json::from_slice::<Reply>(body).map_or_else(|_| String::new(), |r| r.result)
}

/// A scan's answer, as this scenario reads it.
struct Scanned {
    status: u16,
    /// `Tessera-Served-By: edge`.
    by_edge: bool,
    /// The component's verification time (`Server-Timing: verify;dur=…`), in µs.
    verify_us: Option<f64>,
    result: String,
}

/// A door's scanner: one kept-alive HTTP/1.1 connection to one edge.
struct Scanner {
    connection: KeptConnection,
}

impl Scanner {
    fn new(authority: &str) -> Self {
        Self {
            connection: KeptConnection::new(authority),
        }
    }

    /// `POST /v1/checkin` with `token` (sent once more on a fresh connection if the edge
    /// closed the kept one: safe, the same nonce replays the first verdict).
    async fn scan(&mut self, token: &str, body: Bytes) -> anyhow::Result<Scanned> {
        let call = Call {
            target: 0,
            method: hyper::Method::POST,
            path_and_query: "/v1/checkin".to_owned(),
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("authorization", format!("Bearer {token}")),
            ],
            body: Some(body),
            tag: 0,
        };
        let answer = self.connection.send(&call).await?;
        Ok(Scanned {
            status: answer.status,
            by_edge: answer.by_edge(),
            verify_us: answer.timing_us(VERIFY_METRIC),
            result: verdict_result(&answer.body),
        })
    }
}

/// Void → refused at the edge, per cancellation (µs).
struct Revocations {
    /// Per edge, over the cancellations it refused in time.
    per_edge_us: Vec<Histogram<u64>>,
    /// The later of the edges, over cancellations every edge refused in time.
    every_edge_us: Histogram<u64>,
    cancellations: usize,
    /// (cancellation, edge) pairs not refused within [`REVOCATION_DEADLINE`].
    missed: u64,
}

/// Cancels each of `orders` (one ticket each) in turn, and times how long after the
/// cancellation's answer each edge refuses the voided code itself.
async fn revocation_latency(
    env: &Env,
    stand: &Stand,
    gate: &Credential,
    orders: &[Order],
) -> anyhow::Result<Revocations> {
    let mut scanners: Vec<Scanner> = stand
        .edges
        .iter()
        .map(|e| Scanner::new(&e.authority))
        .collect();
    let mut latencies = Revocations {
        per_edge_us: (0..stand.edges.len()).map(|_| histogram()).collect(),
        every_edge_us: histogram(),
        cancellations: orders.len(),
        missed: 0,
    };
    for (k, order) in orders.iter().enumerate() {
        let [ticket] = order.tickets.as_slice() else {
            anyhow::bail!("order {} is not of one ticket", order.hold_id);
        };
        let cancel = format!("/admin/v1/orders/{}/cancel", order.hold_id);
        stand.ledger.admin_post(env, &cancel, &Value::Null).await?;
        let voided_at = Instant::now();
        let polls = scanners.iter_mut().enumerate().map(|(e, scanner)| {
            refused_at(scanner, gate, &ticket.code, voided_at, format!("r{k}-e{e}"))
        });
        let seen = futures_util::future::join_all(polls).await;
        for (edge, latency) in seen.iter().enumerate() {
            match latency {
                Some(latency) => {
                    latencies.per_edge_us[edge].saturating_record(latency.as_micros().max(1) as u64)
                }
                None => latencies.missed += 1,
            }
        }
        // Refused at every door once the slowest edge refused it.
        let slowest = seen.iter().flatten().max();
        if let (true, Some(slowest)) = (seen.iter().all(Option::is_some), slowest) {
            latencies
                .every_edge_us
                .saturating_record(slowest.as_micros().max(1) as u64);
        }
    }
    Ok(latencies)
}

/// Scans `code` through `scanner` every [`REVOCATION_POLL`] (nonces `{nonce}-0`, `-1`, …)
/// until the edge answers `revoked` itself: the time since `voided_at` at that answer, or
/// `None` once [`REVOCATION_DEADLINE`] has passed. Until then the edge forwards the scan
/// and the ledger answers `void`.
async fn refused_at(
    scanner: &mut Scanner,
    gate: &Credential,
    code: &str,
    voided_at: Instant,
    nonce: String,
) -> Option<Duration> {
    let deadline = voided_at + REVOCATION_DEADLINE;
    for poll in 0..REVOCATION_POLLS_MAX {
        if Instant::now() >= deadline {
            break;
        }
        let body = scan_body(code, &gate.gate, &format!("{nonce}-{poll}"));
        if let Ok(scanned) = scanner.scan(&gate.token, body).await {
            if Expected::REVOKED_AT_EDGE.matches(&scanned) {
                return Some(voided_at.elapsed());
            }
        }
        tokio::time::sleep(REVOCATION_POLL).await;
    }
    None
}

/// The answer a path's scans should get.
#[derive(Clone, Copy)]
struct Expected {
    status: u16,
    result: &'static str,
    by_edge: bool,
}

impl Expected {
    const REVOKED_AT_EDGE: Self = Self {
        status: 409,
        result: "revoked",
        by_edge: true,
    };
    const REDEEMED: Self = Self {
        status: 201,
        result: "ok",
        by_edge: false,
    };

    fn matches(self, scanned: &Scanned) -> bool {
        scanned.status == self.status
            && scanned.result == self.result
            && scanned.by_edge == self.by_edge
    }
}

/// The codes a path's scanners send.
enum Codes {
    /// Sent again and again (revoked codes stay revoked).
    Cycle(Vec<String>),
    /// Each sent once (a valid code is redeemed once); the scanners stop when all are.
    Once(Vec<String>, AtomicUsize),
}

impl Codes {
    fn next(&self, client: usize, n: u64) -> Option<&str> {
        match self {
            // Scanner `client`'s n-th scan: the clients spread over the codes.
            Codes::Cycle(codes) => {
                let i = (client as u64).wrapping_add(n.wrapping_mul(VERIFY_CLIENTS as u64));
                codes.get(usize::try_from(i.checked_rem(codes.len() as u64)?).ok()?)
            }
            Codes::Once(codes, taken) => codes.get(taken.fetch_add(1, Ordering::Relaxed)),
        }
        .map(String::as_str)
    }

    fn exhausted(&self) -> bool {
        match self {
            Codes::Cycle(_) => false,
            Codes::Once(codes, taken) => taken.load(Ordering::Relaxed) >= codes.len(),
        }
    }
}

/// One path of the edge-verify comparison.
struct ScanPath {
    /// The nonces' prefix: no two paths' scans share a nonce.
    tag: &'static str,
    codes: Codes,
    expected: Expected,
}

/// A path's figures, over the scans sent in its window.
struct PathFigures {
    /// Answered as the path expects (their latency in `latency_us`).
    expected: u64,
    /// Answered otherwise.
    unexpected: u64,
    /// No answer (connection failed, or none within the load generator's request timeout).
    failed: u64,
    /// Answers that carried the component's verification time.
    timed: u64,
    /// From the first scan of the window to its last answer.
    elapsed_s: f64,
    /// The path's codes ran out before the window ended.
    exhausted: bool,
    last_answer: Option<Instant>,
    /// As the client measures it, µs.
    latency_us: Histogram<u64>,
    /// Inside the component (`Server-Timing`), µs.
    verify_us: Histogram<u64>,
}

impl PathFigures {
    fn new() -> Self {
        Self {
            expected: 0,
            unexpected: 0,
            failed: 0,
            timed: 0,
            elapsed_s: 0.0,
            exhausted: false,
            last_answer: None,
            latency_us: histogram(),
            verify_us: histogram(),
        }
    }

    fn tally(&mut self, scanned: &anyhow::Result<Scanned>, sent: Instant, expected: Expected) {
        let Ok(scanned) = scanned else {
            self.failed += 1;
            return;
        };
        let now = Instant::now();
        self.last_answer = self.last_answer.max(Some(now));
        if let Some(us) = scanned.verify_us {
            self.timed += 1;
            self.verify_us.saturating_record(us.round().max(1.0) as u64);
        }
        if expected.matches(scanned) {
            self.expected += 1;
            let latency_us = (now - sent).as_micros().max(1) as u64;
            self.latency_us.saturating_record(latency_us);
        } else {
            self.unexpected += 1;
        }
    }

    fn absorb(&mut self, other: &PathFigures) -> anyhow::Result<()> {
        self.expected += other.expected;
        self.unexpected += other.unexpected;
        self.failed += other.failed;
        self.timed += other.timed;
        self.last_answer = self.last_answer.max(other.last_answer);
        self.latency_us
            .add(&other.latency_us)
            .context("merging histograms")?;
        self.verify_us
            .add(&other.verify_us)
            .context("merging histograms")?;
        Ok(())
    }

    fn per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.expected as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Mean verification ÷ mean request, when both were measured.
    fn verify_share(&self) -> Option<f64> {
        let (verify, request) = (self.verify_us.mean(), self.latency_us.mean());
        (self.timed > 0 && self.expected > 0 && request > 0.0).then(|| verify / request)
    }
}

/// [`VERIFY_CLIENTS`] closed-loop scanners on `authority` (scanner `i` with gate `i`'s
/// credential) for the plan's warm-up and then its check-in window, or until the path's
/// codes run out.
async fn scan_path(
    authority: &str,
    gates: &Arc<Vec<Credential>>,
    path: ScanPath,
    plan: &Plan,
) -> anyhow::Result<PathFigures> {
    let path = Arc::new(path);
    let measure_from = Instant::now() + plan.warmup;
    let deadline = measure_from + plan.checkin_window;
    let tasks: Vec<_> = (0..VERIFY_CLIENTS)
        .map(|client| {
            let scanner = Scanner::new(authority);
            let credential = gates[client % gates.len()].clone();
            let path = path.clone();
            tokio::spawn(async move {
                scan_client(client, scanner, credential, &path, (measure_from, deadline)).await
            })
        })
        .collect();
    let mut total = PathFigures::new();
    for task in tasks {
        total.absorb(&task.await.context("a scanner panicked")?)?;
    }
    total.elapsed_s = total.last_answer.map_or(0.0, |last| {
        last.saturating_duration_since(measure_from).as_secs_f64()
    });
    total.exhausted = path.codes.exhausted();
    Ok(total)
}

/// Scanner `client`: its next scan once the last is answered, until `deadline` or the
/// path's codes run out; its figures over the scans sent from `measure_from`.
async fn scan_client(
    client: usize,
    mut scanner: Scanner,
    credential: Credential,
    path: &ScanPath,
    (measure_from, deadline): (Instant, Instant),
) -> PathFigures {
    let mut figures = PathFigures::new();
    for n in 0..SCANS_PER_CLIENT_MAX {
        let sent = Instant::now();
        if sent >= deadline {
            break;
        }
        let Some(code) = path.codes.next(client, n) else {
            break;
        };
        let body = scan_body(
            code,
            &credential.gate,
            &format!("{}-{client}-{n}", path.tag),
        );
        let scanned = scanner.scan(&credential.token, body).await;
        if sent >= measure_from {
            figures.tally(&scanned, sent, path.expected);
        }
        if scanned.is_err() {
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
    }
    figures
}

/// The doors' run: the load generator's figures (latency of the `ok`s), what the answers
/// said, and what the database holds afterwards.
struct DoorsRun {
    tickets: usize,
    figures: Figures,
    ok: u64,
    already_redeemed: u64,
    /// Every other answer, by status and result.
    other: BTreeMap<String, u64>,
    /// Latency of the `already_redeemed` answers, µs.
    refused_us: Histogram<u64>,
    audit: DoorAudit,
}

impl DoorsRun {
    /// Exactly one `ok` and one `already_redeemed` per ticket, in the answers and in the
    /// database, and nothing else.
    fn exact(&self) -> bool {
        let n = self.tickets as u64;
        self.ok == n
            && self.already_redeemed == n
            && self.other.is_empty()
            && self.figures.failed == 0
            && self.audit.checked_in == n as i64
            && self.audit.ok_rows == n as i64
            && self.audit.already_redeemed_rows == n as i64
    }
}

async fn doors(stand: &Stand, setup: &Setup) -> anyhow::Result<DoorsRun> {
    let workload = Arc::new(DoorScans::new(setup.gates.clone(), &setup.doors));
    let figures = load::closed_loop(
        &stand.edge_targets(),
        workload.clone(),
        setup.gates.len(),
        Duration::ZERO,
        DOORS_DEADLINE,
    )
    .await?;
    let audit = DoorAudit::read(&stand.ledger.pool, &setup.doors).await?;
    let lock = |what| anyhow::anyhow!("the doors' {what} lock was poisoned");
    let other = workload.other.lock().map_err(|_| lock("answers"))?.clone();
    let refused_us = workload
        .refused_us
        .lock()
        .map_err(|_| lock("latency"))?
        .clone();
    Ok(DoorsRun {
        tickets: setup.doors.len(),
        figures,
        ok: workload.ok.load(Ordering::Relaxed),
        already_redeemed: workload.already_redeemed.load(Ordering::Relaxed),
        other,
        refused_us,
        audit,
    })
}

/// 32 gates, each scanning its list of tickets in order through edge `gate % 2`. Ticket `t`
/// is on the lists of gates `t % 32` and `(t + 1) % 32`, near the same position: its two
/// scans race, through different edges.
struct DoorScans {
    gates: Arc<Vec<Credential>>,
    codes: Vec<String>,
    /// Per gate, the indexes into `codes` it scans, in order.
    lists: Vec<Vec<usize>>,
    ok: AtomicU64,
    already_redeemed: AtomicU64,
    /// A std `Mutex`: held only to count, never across an `.await`.
    other: Mutex<BTreeMap<String, u64>>,
    refused_us: Mutex<Histogram<u64>>,
}

impl DoorScans {
    fn new(gates: Arc<Vec<Credential>>, tickets: &[Ticket]) -> Self {
        let mut lists = vec![Vec::new(); gates.len()];
        for t in 0..tickets.len() {
            lists[t % gates.len()].push(t);
            lists[(t + 1) % gates.len()].push(t);
        }
        Self {
            gates,
            codes: tickets.iter().map(|t| t.code.clone()).collect(),
            lists,
            ok: AtomicU64::new(0),
            already_redeemed: AtomicU64::new(0),
            other: Mutex::new(BTreeMap::new()),
            refused_us: Mutex::new(histogram()),
        }
    }
}

impl Workload for DoorScans {
    fn next(&self, client: usize, n: u64) -> Option<Call> {
        // The closed loop numbers a client's calls from 1.
        let ticket = *self
            .lists
            .get(client)?
            .get(usize::try_from(n.checked_sub(1)?).ok()?)?;
        let gate = self.gates.get(client)?;
        let body = json!({"code": self.codes[ticket], "gate": gate.gate, "nonce": format!("d{client}-{n}")});
        Some(
            Call::post_json(client % EDGES, "/v1/checkin", &body)
                .header("authorization", format!("Bearer {}", gate.token)),
        )
    }

    fn judge(&self, _call: &Call, answer: &Answer, latency: Duration, _measured: bool) -> Verdict {
        let result = verdict_result(&answer.body);
        match (answer.status, result.as_str()) {
            (201, "ok") => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                Verdict::Ok
            }
            (409, "already_redeemed") => {
                self.already_redeemed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut refused) = self.refused_us.lock() {
                    refused.saturating_record(latency.as_micros().max(1) as u64);
                }
                Verdict::Refused
            }
            (status, result) => {
                if let Ok(mut other) = self.other.lock() {
                    *other.entry(format!("{status} {result}")).or_default() += 1;
                }
                Verdict::Failed
            }
        }
    }
}

/// The doors' tickets as the database holds them afterwards.
struct DoorAudit {
    checked_in: i64,
    /// `checkins` rows of these tickets with each result.
    ok_rows: i64,
    already_redeemed_rows: i64,
    other_rows: i64,
}

impl DoorAudit {
    async fn read(pool: &PgPool, tickets: &[Ticket]) -> anyhow::Result<Self> {
        let ids = tickets
            .iter()
            .map(|t| t.ticket_id.parse::<uuid::Uuid>())
            .collect::<Result<Vec<_>, _>>()
            .context("a ticket id")?;
        let checked_in: i64 = sqlx::query_scalar(
            "select count(*) from tickets where id = any($1) and status = 'checked_in'",
        )
        .bind(&ids)
        .fetch_one(pool)
        .await
        .context("counting checked-in tickets")?;
        let (ok_rows, already_redeemed_rows, other_rows): (i64, i64, i64) = sqlx::query_as(
            "select count(*) filter (where result = 'ok'),
                    count(*) filter (where result = 'already_redeemed'),
                    count(*) filter (where result not in ('ok', 'already_redeemed'))
             from checkins where ticket_id = any($1)",
        )
        .bind(&ids)
        .fetch_one(pool)
        .await
        .context("counting the doors' scans")?;
        Ok(Self {
            checked_in,
            ok_rows,
            already_redeemed_rows,
            other_rows,
        })
    }
}

fn report(section: &mut Section, plan: &Plan, measured: &Measured) {
    notes(section, plan, measured);
    edge_verify_goal(section, measured);
    doors_goal(section, &measured.doors);
    revocation_goal(section, &measured.revocations);
    section.tables.push(paths_table(&measured.paths));
    section.tables.push(doors_table(&measured.doors));
    section.tables.push(revocation_table(&measured.revocations));
    section.data = data(measured);
}

fn notes(section: &mut Section, plan: &Plan, measured: &Measured) {
    section.notes.push(format!(
        "One event, one ledger, {EDGES} edge nodes, {GATES} gate credentials. Edge verification: {VERIFY_CLIENTS} closed-loop scanners on one edge for {:.1} s \
         (after {} ms of warm-up) per path: first the voided tickets' codes again and again (answered `revoked` at the edge: the credential's and the code's \
         signatures checked with the cached keys, the revoked set looked up), then valid codes, each once (verified, forwarded, redeemed by the ledger{}). \
         The component times its verification (wall clock inside the guest: a verification preempted on the shared cores counts the wait) and says so in \
         `Server-Timing: verify;dur=<ms>`; latency is the client's, from sending to the whole answer.",
        plan.checkin_window.as_secs_f64(),
        plan.warmup.as_millis(),
        if measured.redeem_exhausted { "; the valid codes ran out before the window ended, so its rate is over the time they lasted" } else { "" },
    ));
    section.notes.push(format!(
        "Doors: {GATES} gates, each a closed-loop scanner on edge `gate % {EDGES}`, scan the same {} tickets twice each: ticket t at gates t mod {GATES} and \
         t+1 mod {GATES}, near the same moment and through different edges. Expected: exactly one `ok` and one `already_redeemed` per ticket, in the answers \
         and in the database (tickets checked in, `checkins` rows).",
        count(measured.doors.tickets as f64)
    ));
    section.notes.push(format!(
        "Revocation: {} orders of one ticket cancelled at the ledger one at a time; from the cancellation's answer every edge is scanned with the voided \
         code every {} ms (a fresh nonce each; the ledger answers `void` meanwhile) until it answers `revoked` itself. The path: the cancel's commit → \
         outbox → Redis → each edge's invalidator, which adds the ids to its cached set. Figures are ± one scan's time.",
        measured.revocations.cancellations,
        REVOCATION_POLL.as_millis()
    ));
}

fn edge_verify_goal(section: &mut Section, measured: &Measured) {
    let [at_edge, redeem] = &measured.paths;
    let unexpected: Vec<String> = measured
        .paths
        .iter()
        .zip(PATHS)
        .filter(|(f, _)| f.unexpected > 0)
        .map(|(f, name)| format!("{name}: {} scans answered otherwise", f.unexpected))
        .collect();
    section.check_failures(
        "every verify-path scan answered as expected (revoked by the edge; ok by the ledger)",
        &unexpected,
        format!(
            "{} + {} scans",
            count(at_edge.expected as f64),
            count(redeem.expected as f64)
        ),
    );
    let share = at_edge.verify_share();
    let measured_text = format!(
        "{:.1} µs a verification = {:.1}% of a {} ms edge answer; {} scans/s answered at the edge vs {} redeemed via the ledger ({VERIFY_CLIENTS} clients, one edge; {:.1} µs verifying a redeemed scan)",
        at_edge.verify_us.mean(),
        share.unwrap_or(f64::NAN) * 100.0,
        ms(at_edge.latency_us.mean() / 1_000.0),
        count(at_edge.per_s()),
        count(redeem.per_s()),
        redeem.verify_us.mean(),
    );
    section.goal(
        "checkin.edge_verify",
        "verification at the edge < 10% of an edge request's time (µs per verify inside the component)",
        measured_text,
        share.is_some_and(|s| s < GOAL_VERIFY_SHARE) && at_edge.timed == at_edge.expected + at_edge.unexpected,
    );
}

fn doors_goal(section: &mut Section, doors: &DoorsRun) {
    let n = doors.tickets as f64;
    let tickets = count(n);
    let mut others: Vec<String> = doors
        .other
        .iter()
        .map(|(answer, k)| format!("{k} × {answer}"))
        .collect();
    // The generator's failures are the other answers and the scans never answered.
    let unanswered = doors
        .figures
        .failed
        .saturating_sub(doors.other.values().sum::<u64>());
    if unanswered > 0 {
        others.push(format!("{unanswered} scans unanswered"));
    }
    let measured_text = format!(
        "{} ok, {} already_redeemed of {} tickets × 2 scans{}; in the database {} checked in, {} ok and {} already_redeemed scans; redeem p99 {} ms",
        count(doors.ok as f64),
        count(doors.already_redeemed as f64),
        count(n),
        if others.is_empty() { String::new() } else { format!(" (and {})", others.join(", ")) },
        count(doors.audit.checked_in as f64),
        count(doors.audit.ok_rows as f64),
        count(doors.audit.already_redeemed_rows as f64),
        ms(doors.figures.p99_ms),
    );
    section.goal(
        "checkin.doors",
        &format!("{GATES} doors scan {tickets} tickets twice each through {EDGES} edges: exactly {tickets} ok and {tickets} already_redeemed (redeem p99 reported)"),
        measured_text.clone(),
        doors.exact(),
    );
    section.check(
        "each ticket redeemed exactly once at the doors (answers and database)",
        doors.exact(),
        measured_text,
    );
}

fn revocation_goal(section: &mut Section, revocations: &Revocations) {
    let every = &revocations.every_edge_us;
    let p99 = quantile_ms(every, 0.99);
    section.goal(
        "checkin.revocation_latency",
        "void at the ledger → refused (revoked) at every edge: p99 < 50 ms",
        format!(
            "{} ms p99 (p50 {} ms, max {} ms) over {} cancellations, {EDGES} edges; {} missed",
            ms(p99),
            ms(quantile_ms(every, 0.5)),
            ms(every.max() as f64 / 1_000.0),
            revocations.cancellations,
            revocations.missed
        ),
        !every.is_empty() && p99 < GOAL_REVOCATION_P99_MS && revocations.missed == 0,
    );
    section.check(
        "a voided ticket is refused at every edge by the edge itself (within 5 s)",
        revocations.missed == 0 && every.len() as usize == revocations.cancellations,
        format!(
            "{} of {} cancellations; {} (cancellation, edge) pairs missed",
            every.len(),
            revocations.cancellations,
            revocations.missed
        ),
    );
}

fn paths_table(paths: &[PathFigures; 2]) -> Table {
    let mut table = Table::new(
        &format!("Scans per second, latency (ms) and verification (µs) by path: {VERIFY_CLIENTS} clients on one edge"),
        &["path", "scans/s", "mean", "p50", "p99", "verify µs (mean)", "verify µs (p99)", "verify ÷ request", "answered otherwise", "errors"],
    );
    for (path, f) in paths.iter().enumerate() {
        table.row(vec![
            PATHS[path].to_owned(),
            count(f.per_s()),
            ms(f.latency_us.mean() / 1_000.0),
            ms(quantile_ms(&f.latency_us, 0.5)),
            ms(quantile_ms(&f.latency_us, 0.99)),
            format!("{:.1}", f.verify_us.mean()),
            count(f.verify_us.value_at_quantile(0.99) as f64),
            f.verify_share()
                .map_or(String::new(), |s| format!("{:.1}%", s * 100.0)),
            count(f.unexpected as f64),
            count(f.failed as f64),
        ]);
    }
    table
}

fn doors_table(doors: &DoorsRun) -> Table {
    let mut table = Table::new(
        &format!("{GATES} doors, each ticket scanned twice through {EDGES} edges"),
        &[
            "tickets",
            "ok",
            "already_redeemed",
            "other",
            "scans/s",
            "redeem p50 (ms)",
            "redeem p99 (ms)",
            "refusal p99 (ms)",
            "checked in (db)",
            "other scans (db)",
        ],
    );
    let f = &doors.figures;
    let scans = (doors.ok + doors.already_redeemed) as f64;
    table.row(vec![
        count(doors.tickets as f64),
        count(doors.ok as f64),
        count(doors.already_redeemed as f64),
        // Other answers and unanswered scans (the generator's failures).
        count(f.failed as f64),
        count(if f.elapsed_s > 0.0 {
            scans / f.elapsed_s
        } else {
            0.0
        }),
        ms(f.p50_ms),
        ms(f.p99_ms),
        ms(quantile_ms(&doors.refused_us, 0.99)),
        count(doors.audit.checked_in as f64),
        count(doors.audit.other_rows as f64),
    ]);
    table
}

fn revocation_table(revocations: &Revocations) -> Table {
    let mut table = Table::new(
        "Void at the ledger → refused at the edge (ms)",
        &[
            "edge",
            "cancellations refused",
            "p50",
            "p99",
            "max",
            "missed (> 5 s)",
        ],
    );
    let row = |name: String, h: &Histogram<u64>, missed: String| {
        vec![
            name,
            count(h.len() as f64),
            ms(quantile_ms(h, 0.5)),
            ms(quantile_ms(h, 0.99)),
            ms(h.max() as f64 / 1_000.0),
            missed,
        ]
    };
    for (edge, h) in revocations.per_edge_us.iter().enumerate() {
        let missed = revocations.cancellations as u64 - h.len();
        table.row(row(format!("edge {edge}"), h, count(missed as f64)));
    }
    let every = &revocations.every_edge_us;
    table.row(row(
        "every edge".to_owned(),
        every,
        count(revocations.missed as f64),
    ));
    table
}

fn data(measured: &Measured) -> Value {
    let path = |(name, f): (&str, &PathFigures)| {
        json!({"path": name, "scans": f.expected, "scans_per_s": f.per_s(), "elapsed_s": f.elapsed_s,
               "mean_ms": f.latency_us.mean() / 1_000.0, "p50_ms": quantile_ms(&f.latency_us, 0.5),
               "p99_ms": quantile_ms(&f.latency_us, 0.99), "verify_mean_us": f.verify_us.mean(),
               "verify_p99_us": f.verify_us.value_at_quantile(0.99), "verify_share": f.verify_share(),
               "timed": f.timed, "unexpected": f.unexpected, "failed": f.failed})
    };
    let doors = &measured.doors;
    let revocations = &measured.revocations;
    let latency = |h: &Histogram<u64>| json!({"count": h.len(), "p50_ms": quantile_ms(h, 0.5), "p99_ms": quantile_ms(h, 0.99), "max_ms": h.max() as f64 / 1_000.0});
    json!({
        "edge_verify": {"clients": VERIFY_CLIENTS, "redeem_codes_ran_out": measured.redeem_exhausted,
                        "paths": PATHS.into_iter().zip(&measured.paths).map(path).collect::<Vec<_>>()},
        "doors": {"gates": GATES, "edges": EDGES, "tickets": doors.tickets, "ok": doors.ok,
                  "already_redeemed": doors.already_redeemed, "other": doors.other,
                  "refusal_p99_ms": quantile_ms(&doors.refused_us, 0.99), "figures": doors.figures,
                  "database": {"checked_in": doors.audit.checked_in, "ok_scans": doors.audit.ok_rows,
                               "already_redeemed_scans": doors.audit.already_redeemed_rows,
                               "other_scans": doors.audit.other_rows}},
        "revocation": {"cancellations": revocations.cancellations, "missed": revocations.missed,
                       "every_edge": latency(&revocations.every_edge_us),
                       "per_edge": revocations.per_edge_us.iter().map(latency).collect::<Vec<_>>()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ticket_is_on_two_gates_lists_through_different_edges() {
        let tickets: Vec<Ticket> = (0..100)
            .map(|t| Ticket {
                ticket_id: t.to_string(),
                code: format!("code-{t}"),
            })
            .collect();
        let gates: Vec<Credential> = (0..GATES)
            .map(|g| Credential {
                gate: format!("Door {g}"),
                token: String::new(),
            })
            .collect();
        let scans = DoorScans::new(Arc::new(gates), &tickets);
        let mut seen = vec![Vec::new(); tickets.len()];
        for (gate, list) in scans.lists.iter().enumerate() {
            for &t in list {
                seen[t].push(gate % EDGES);
            }
        }
        assert!(seen
            .iter()
            .all(|edges| edges.len() == 2 && edges[0] != edges[1]));
    }
}

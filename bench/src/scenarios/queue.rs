//! Scenario 13: the front door's queue (`queue.*`, issue 15). A ledger (`QUEUE_TICK_MS`
//! 200) and two edge nodes; each measurement on an event of its own, in this order:
//!
//! - `queue.join_rate`: a flash crowd joining one event's queue (whose admission opens a
//!   day later, so nothing moves meanwhile), open loop: `people` joins due at fixed
//!   intervals over the window, the edges in turn, each with its own `Idempotency-Key`, on
//!   at most [`Form::join_connections`] connections per edge (a join that finds none free
//!   waits and counts as late; latency runs from when it was due). Then, at the ledger:
//!   `joined` equals the 201s and the answers' positions are exactly 1..=N. Baseline: the
//!   same rate straight at the ledger (a fifth of the people, an event of its own).
//! - `queue.admission_accuracy`: people join a queue opening a few seconds later at
//!   [`ADMIT_PER_MINUTE`]; from the opening, once a second, the ledger's `serving` is read
//!   (`GET …/queue/state`) and sampled people poll through one edge (the edges in turn, a
//!   ticket per sampled position, in position order, plus the last place in line, whose
//!   answers carry that edge's `serving`). Rate = Δserving / Δt; fairness, judged by the
//!   answers themselves: an edge refusing place q after it admitted a later place p > q
//!   (its `serving` gone backwards) is an inversion (see [`inversions`]).
//! - `queue.pass_check`: holds on a queued event without a pass, with a forged pass and
//!   with another event's pass, through the edges: all must be refused 403, and the
//!   ledger's `/v1/holds` requests from edges (and the edges' outbound POSTs from `holds`)
//!   must not move. The edge's verification cost: `Server-Timing: pass;dur=` when the
//!   holds component reports it, else the forged-pass refusal's latency minus the
//!   pass-less one's (both answered at the edge; the difference is the HMAC check). Holds
//!   with a valid pass against the same event shape without a queue give the whole
//!   queue's cost on a hold (edge and ledger checks).
//!
//! The joins and polls go through the edges when they serve the queue routes; a stand
//! whose edges do not (no queue component) sends them to the ledger and says so.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::load::{
    self, histogram, quantile_ms, Answer, Call, Figures, KeptConnection, Probed, Targets, Verdict,
    Workload,
};
use crate::report::{count, ms, Section, Table};
use crate::scenarios::{edge_requests, Stand};
use crate::stack::{start_edges, Env, EventIds, Ledger};
use crate::{Plan, Progress};

const EDGES: usize = 2;
/// The ledger's queue tick in this scenario (the default is 1 s): `serving` moves in
/// steps of rate × tick, 2 people at 600 a minute, so a 20 s quick window is not judged
/// on a 10-person step.
const TICK_MS: &str = "200";
/// The admission rate measured (people per minute).
const ADMIT_PER_MINUTE: i64 = 600;
const SESSION_MINUTES: i64 = 10;
/// The pass-check event lets everyone in at once (the most the API allows).
const ADMIT_ALL_PER_MINUTE: i64 = 100_000;
/// Goals.
const GOAL_JOIN_P99_MS: f64 = 100.0;
const GOAL_RATE_TOLERANCE: f64 = 0.05;
/// Sampled positions polled in the admission run (each at most once a round).
const SAMPLED_MAX: usize = 200;
/// The admission run's rounds: one a second.
const ROUND: Duration = Duration::from_secs(1);
/// Closed-loop clients for setup joins, pass fetches and the pass-check holds.
const SETUP_CLIENTS: usize = 32;
const HOLD_CLIENTS: usize = 16;
/// The refused holds run one at a time: their latencies are compared.
const REFUSAL_CLIENTS: usize = 1;
/// Longest the pass-check event may take to let everyone in.
const ADMIT_WAIT: Duration = Duration::from_secs(60);
/// Longest a setup batch (joins, passes) may take.
const SETUP_DEADLINE: Duration = Duration::from_secs(300);
/// The ledger routes counted for what reached it.
const HOLDS_ROUTE: &str = "/v1/holds";
/// The Server-Timing metric the holds component would report its pass check in.
const PASS_METRIC: &str = "pass";
/// The ticket and pass headers (`tessera_domain::queue`).
const TICKET_HEADER: &str = "tessera-queue-ticket";
const PASS_HEADER: &str = "tessera-pass";
/// Inconsistent poll answers quoted in the report (all are counted).
const INCONSISTENT_KEPT: usize = 20;

/// How big each measurement is (`--quick`: a first look in a debug build).
struct Form {
    people: u64,
    join_window: Duration,
    join_connections: usize,
    admission_window: Duration,
    /// From setting the admission queue up to its opening: its people join meanwhile.
    open_delay: Duration,
    pass_holds: usize,
    refusals_per_kind: usize,
}

impl Form {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                people: 5_000,
                join_window: Duration::from_secs(5),
                join_connections: 64,
                admission_window: Duration::from_secs(20),
                open_delay: Duration::from_secs(4),
                pass_holds: 200,
                refusals_per_kind: 200,
            }
        } else {
            Self {
                people: 100_000,
                join_window: Duration::from_secs(10),
                join_connections: 256,
                admission_window: Duration::from_secs(180),
                open_delay: Duration::from_secs(6),
                pass_holds: 1_000,
                refusals_per_kind: 2_000,
            }
        }
    }

    /// People let in over the admission window at the rate.
    fn admitted_in_window(&self) -> i64 {
        ADMIT_PER_MINUTE * self.admission_window.as_secs() as i64 / 60
    }
}

/// A queue answer (`QueueStatus`), as far as this scenario reads it.
#[derive(Debug, Clone, Deserialize)]
struct Status {
    ticket: String,
    position: i64,
    serving: i64,
    state: String,
    pass: Option<PassView>,
}

#[derive(Debug, Clone, Deserialize)]
struct PassView {
    token: String,
}

pub async fn run(env: &Env, plan: &Plan, progress: &Progress) -> anyhow::Result<Section> {
    let mut section = Section::new("queue", "13. The front door: queue and admission passes");
    let form = Form::new(plan.quick);
    progress.step("queue: starting a ledger and 2 edges");
    let ledger = Ledger::start(env, "queue", &[("QUEUE_TICK_MS", TICK_MS)]).await?;
    let edges = match start_edges(env, "queue-edge", &ledger, EDGES).await {
        Ok(edges) => edges,
        Err(e) => {
            let _ = ledger.stop().await;
            return Err(e);
        }
    };
    let stand = Stand { ledger, edges };
    let measured = measure(env, &form, progress, &stand).await;
    let stopped = stand.stop().await;
    let measured = measured?;
    stopped?;
    report(&mut section, &form, &measured);
    Ok(section)
}

struct Measured {
    /// Joins and polls went through the edges (else the ledger: no queue component).
    via_edges: bool,
    joins: JoinRun,
    /// The same rate of joins straight at the ledger (when `joins` went through the edges).
    ledger_joins: Option<JoinRun>,
    admission: AdmissionRun,
    pass: PassRun,
}

async fn measure(
    env: &Env,
    form: &Form,
    progress: &Progress,
    stand: &Stand,
) -> anyhow::Result<Measured> {
    let admin = Admin::new(&stand.ledger).await?;
    let join_event = admin.create_event(env, "queue-joins", 100).await?;
    let far = chrono::Utc::now() + chrono::TimeDelta::days(1);
    admin
        .put_queue(env, &join_event.event_id, ADMIT_PER_MINUTE, Some(far))
        .await?;
    let via_edges = edges_serve_queue(stand, &join_event.event_id).await;
    let queue_targets = if via_edges {
        stand.edge_targets()
    } else {
        Targets::new(vec![stand.ledger.authority.clone()])
    };
    progress.step(&format!(
        "queue: {} people joining in {:.0} s through {}",
        count(form.people as f64),
        form.join_window.as_secs_f64(),
        if via_edges { "2 edges" } else { "the ledger" }
    ));
    let joins = join_rate(env, form, stand, &queue_targets, &join_event, form.people).await?;
    // The baseline: the same rate straight at the ledger, on an event of its own, for a
    // fifth of the people (where joins wait: in the edges or at the ledger).
    let ledger_joins = if via_edges {
        progress.step("queue: the same joins straight at the ledger (baseline)");
        let ids = admin.create_event(env, "queue-joins-ledger", 100).await?;
        admin
            .put_queue(env, &ids.event_id, ADMIT_PER_MINUTE, Some(far))
            .await?;
        let ledger = Targets::new(vec![stand.ledger.authority.clone()]);
        Some(join_rate(env, form, stand, &ledger, &ids, (form.people / 5).max(1)).await?)
    } else {
        None
    };
    progress.step(&format!(
        "queue: admission at {ADMIT_PER_MINUTE}/min for {:.0} s",
        form.admission_window.as_secs_f64()
    ));
    let admission = admission(env, form, &admin, stand, &queue_targets).await?;
    progress.step("queue: holds without, with forged and with valid passes");
    let pass = pass_check(env, form, &admin, stand, &queue_targets, &admission).await?;
    Ok(Measured {
        via_edges,
        joins,
        ledger_joins,
        admission,
        pass,
    })
}

/// Whether the edges answer the queue routes (a poll without a ticket: refused 403 by a
/// queue component, 404 where there is none).
async fn edges_serve_queue(stand: &Stand, event_id: &str) -> bool {
    let path = format!("/v1/events/{event_id}/queue");
    for edge in &stand.edges {
        match load::once(&edge.authority, &Call::get(0, path.clone())).await {
            Ok(answer) if answer.status != 404 => {}
            _ => return false,
        }
    }
    true
}

/// The scenario's own tenant (the stand's token is the stack's): the queued events are its.
struct Admin {
    base: String,
    token: String,
}

impl Admin {
    async fn new(ledger: &Ledger) -> anyhow::Result<Self> {
        let mut conn = ledger.pool.acquire().await?;
        let (_, token) = tessera_ledger::auth::create_tenant(&mut conn, "Bench queue").await?;
        Ok(Self {
            base: ledger.base.clone(),
            token,
        })
    }

    async fn send(
        &self,
        env: &Env,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = env
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))
    }

    /// A published event with one show of one zone of `capacity` (1 to 4 per order).
    async fn create_event(&self, env: &Env, slug: &str, capacity: i64) -> anyhow::Result<EventIds> {
        let body = json!({
            "slug": slug, "title": format!("Bench {slug}"), "category": "concerts",
            "venue": {"name": "Arena", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
            "shows": [{"starts_at": "2030-01-01T19:00:00Z", "zones": [
                {"name": "Floor", "price_minor": 5000, "currency": "EUR", "capacity": capacity, "max_per_order": 4}
            ]}]
        });
        let created = self
            .send(env, reqwest::Method::POST, "/admin/v1/events", Some(&body))
            .await?;
        let event_id = created["event_id"].as_str().context("event_id")?.to_owned();
        self.send(
            env,
            reqwest::Method::POST,
            &format!("/admin/v1/events/{event_id}/publish"),
            None,
        )
        .await?;
        let show = &created["shows"][0];
        Ok(EventIds {
            event_id,
            show_id: show["show_id"].as_str().context("show_id")?.to_owned(),
            zone_ids: vec![show["zones"][0]["zone_id"]
                .as_str()
                .context("zone_id")?
                .to_owned()],
        })
    }

    async fn put_queue(
        &self,
        env: &Env,
        event_id: &str,
        admit_per_minute: i64,
        opens_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> anyhow::Result<Value> {
        let body = json!({"enabled": true, "admit_per_minute": admit_per_minute,
                          "session_minutes": SESSION_MINUTES,
                          "opens_at": opens_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))});
        self.send(
            env,
            reqwest::Method::PUT,
            &format!("/admin/v1/events/{event_id}/queue"),
            Some(&body),
        )
        .await
    }
}

/// `GET /v1/events/{id}/queue/state` at the ledger: (`joined`, `serving`).
async fn ledger_state(env: &Env, ledger: &Ledger, event_id: &str) -> anyhow::Result<(i64, i64)> {
    let url = format!("{}/v1/events/{event_id}/queue/state", ledger.base);
    let state: Value = env
        .http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))?;
    Ok((
        state["joined"].as_i64().context("joined")?,
        state["serving"].as_i64().context("serving")?,
    ))
}

/// People joining one event's queue, `limit` in all, the targets in turn.
struct Joins {
    path: String,
    tag: &'static str,
    targets: usize,
    limit: u64,
    issued: AtomicU64,
    /// The 201s' positions (and tickets, when kept).
    places: Mutex<Vec<(i64, String)>>,
    keep_tickets: bool,
    /// Answers other than 201, by status and code.
    other: Mutex<BTreeMap<String, u64>>,
}

impl Joins {
    fn new(
        event_id: &str,
        tag: &'static str,
        targets: usize,
        limit: u64,
        keep_tickets: bool,
    ) -> Self {
        Self {
            path: format!("/v1/events/{event_id}/queue"),
            tag,
            targets,
            limit,
            issued: AtomicU64::new(0),
            places: Mutex::new(Vec::with_capacity(limit as usize)),
            keep_tickets,
            other: Mutex::new(BTreeMap::new()),
        }
    }

    fn places(&self) -> Vec<(i64, String)> {
        self.places.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Workload for Joins {
    fn next(&self, _client: usize, _n: u64) -> Option<Call> {
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        if i >= self.limit {
            return None;
        }
        Some(Call {
            target: i as usize % self.targets.max(1),
            method: hyper::Method::POST,
            path_and_query: self.path.clone(),
            headers: vec![("idempotency-key", format!("{}-{i}", self.tag))],
            body: None,
            tag: i,
        })
    }

    fn judge(&self, _call: &Call, answer: &Answer, _latency: Duration, _measured: bool) -> Verdict {
        if answer.status == 201 {
            if let Ok(status) = serde_json::from_slice::<Status>(&answer.body) {
                let ticket = if self.keep_tickets {
                    status.ticket
                } else {
                    String::new()
                };
                if let Ok(mut places) = self.places.lock() {
                    places.push((status.position, ticket));
                }
                return Verdict::Ok;
            }
        }
        if let Ok(mut other) = self.other.lock() {
            *other
                .entry(format!("{} {}", answer.status, problem_code(&answer.body)))
                .or_default() += 1;
        }
        Verdict::Failed
    }
}

/// The `code` of a problem+json body (empty if none).
fn problem_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The joins' positions against the ledger's count.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct PositionAudit {
    answered: u64,
    joined: i64,
    duplicates: u64,
    out_of_range: u64,
    /// Positions in 1..=joined no answer had.
    missing: u64,
}

impl PositionAudit {
    fn new(positions: &[i64], joined: i64) -> Self {
        let mut sorted = positions.to_vec();
        sorted.sort_unstable();
        let duplicates = sorted.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        let out_of_range = sorted.iter().filter(|&&p| p < 1 || p > joined).count() as u64;
        sorted.dedup();
        let distinct_in_range = sorted.iter().filter(|&&p| p >= 1 && p <= joined).count() as i64;
        Self {
            answered: positions.len() as u64,
            joined,
            duplicates,
            out_of_range,
            missing: u64::try_from(joined - distinct_in_range).unwrap_or(0),
        }
    }

    /// Exactly 1..=N for N 201s, and the ledger counts N.
    fn exact(&self) -> bool {
        self.duplicates == 0
            && self.out_of_range == 0
            && self.missing == 0
            && self.joined == self.answered as i64
    }
}

struct JoinRun {
    figures: Figures,
    other: BTreeMap<String, u64>,
    audit: PositionAudit,
    /// Joins never answered (transport errors, timeouts): places the ledger may have
    /// handed out that no answer carried.
    unanswered: u64,
}

/// `people` joins due over `window` (the form's rate) at `targets`, open loop.
async fn join_rate(
    env: &Env,
    form: &Form,
    stand: &Stand,
    targets: &Targets,
    ids: &EventIds,
    people: u64,
) -> anyhow::Result<JoinRun> {
    let workload = Arc::new(Joins::new(
        &ids.event_id,
        "j",
        targets.0.len(),
        people,
        false,
    ));
    let rate = form.people as f64 / form.join_window.as_secs_f64();
    let window = Duration::from_secs_f64(people as f64 / rate);
    let figures = load::open_loop(
        targets,
        workload.clone(),
        rate,
        window,
        form.join_connections,
    )
    .await?;
    let (joined, _) = ledger_state(env, &stand.ledger, &ids.event_id).await?;
    let positions: Vec<i64> = workload.places().into_iter().map(|(p, _)| p).collect();
    let answered: u64 = figures.by_status.values().sum();
    Ok(JoinRun {
        audit: PositionAudit::new(&positions, joined),
        unanswered: figures.due.saturating_sub(answered),
        other: workload.other.lock().map(|o| o.clone()).unwrap_or_default(),
        figures,
    })
}

/// `people` joins through `targets`, closed loop, for setup: the places (position, ticket).
async fn join_people(
    targets: &Targets,
    event_id: &str,
    tag: &'static str,
    people: u64,
) -> anyhow::Result<Vec<(i64, String)>> {
    let workload = Arc::new(Joins::new(event_id, tag, targets.0.len(), people, true));
    let figures = load::closed_loop(
        targets,
        workload.clone(),
        SETUP_CLIENTS,
        Duration::ZERO,
        SETUP_DEADLINE,
    )
    .await?;
    let mut places = workload.places();
    if places.len() as u64 != people {
        bail!(
            "{} of {people} setup joins succeeded ({} failed: {:?})",
            places.len(),
            figures.failed,
            workload.other.lock().map(|o| o.clone()).unwrap_or_default()
        );
    }
    places.sort_unstable_by_key(|(p, _)| *p);
    Ok(places)
}

/// Every call of `calls` (call `i` to `authorities[call.target % len]`), by `clients`
/// closed-loop clients: each outcome in the calls' order, and the time it all took.
async fn run_calls(
    authorities: &[String],
    calls: Vec<Call>,
    clients: usize,
) -> anyhow::Result<(Vec<Result<Probed, String>>, Duration)> {
    let calls = Arc::new(calls);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients.min(calls.len()).max(1) {
        let (calls, next) = (calls.clone(), next.clone());
        let mut probes: Vec<KeptConnection> =
            authorities.iter().map(|a| KeptConnection::new(a)).collect();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(call) = calls.get(i) else {
                    break;
                };
                let slot = call.target % probes.len();
                let outcome = probes[slot].send(call).await.map_err(|e| format!("{e:#}"));
                done.push((i, outcome));
            }
            done
        }));
    }
    let mut outcomes: Vec<(usize, Result<Probed, String>)> = Vec::with_capacity(calls.len());
    for task in tasks {
        outcomes.extend(task.await.context("a request task panicked")?);
    }
    let elapsed = started.elapsed();
    outcomes.sort_unstable_by_key(|(i, _)| *i);
    Ok((outcomes.into_iter().map(|(_, o)| o).collect(), elapsed))
}

/// A poll of `ticket`'s place through target `target`.
fn poll_call(target: usize, event_id: &str, ticket: &str) -> Call {
    Call::get(target, format!("/v1/events/{event_id}/queue")).header(TICKET_HEADER, ticket)
}

/// One sampled person's poll answer in the admission run.
#[derive(Debug, Clone, serde::Serialize)]
struct PollSeen {
    round: usize,
    edge: usize,
    at_s: f64,
    position: i64,
    serving: i64,
    state: String,
    pass: bool,
}

struct AdmissionRun {
    people: i64,
    /// (s since the opening, serving) at the ledger, once a round.
    ledger: Vec<(f64, i64)>,
    /// Per target: (s since the opening, serving) from the last place's polls.
    edges: Vec<Vec<(f64, i64)>>,
    sampled: Vec<i64>,
    /// Per sampled position (same order): the round it was first seen admitted.
    first_admitted: Vec<Option<usize>>,
    /// Per target: every poll answer, in the order it came (one connection, one poll at
    /// a time): what [`inversions`] judges.
    answered: Vec<Vec<Judged>>,
    inversions: u64,
    /// Answers whose state disagrees with their own `serving`, or admitted without a pass
    /// (the first [`INCONSISTENT_KEPT`] kept).
    inconsistent_count: u64,
    inconsistent: Vec<PollSeen>,
    answers: u64,
    poll_failures: BTreeMap<String, u64>,
    /// The joins ran past the opening (the queue never ran dry: the rate is unaffected).
    joins_overran: bool,
    /// A valid pass of this event, for the other-event refusals.
    a_pass: Option<String>,
}

impl AdmissionRun {
    /// A run over `lineup` polled through `edges` targets, nothing seen yet.
    fn new(lineup: &Lineup, edges: usize) -> Self {
        Self {
            people: lineup.people,
            ledger: Vec::new(),
            edges: vec![Vec::new(); edges],
            first_admitted: vec![None; lineup.sampled.len()],
            answered: vec![Vec::new(); edges],
            sampled: lineup.sampled.clone(),
            inversions: 0,
            inconsistent_count: 0,
            inconsistent: Vec::new(),
            answers: 0,
            poll_failures: BTreeMap::new(),
            joins_overran: lineup.joins_overran,
            a_pass: None,
        }
    }

    fn poll_failed(&mut self, why: String) {
        *self.poll_failures.entry(why).or_default() += 1;
    }

    /// Records one poll answer: for `sample` (an index into `sampled`), or for the last
    /// place when `None`; `pass` is the pass the answer carried.
    fn record(&mut self, sample: Option<usize>, seen: PollSeen, pass: Option<String>) {
        self.answers += 1;
        let admitted = seen.state == "admitted";
        let consistent = admitted == (seen.position <= seen.serving)
            && admitted == seen.pass
            && seen.state != "expired";
        let judged = Judged {
            position: seen.position,
            admitted,
        };
        match sample {
            None => self.edges[seen.edge].push((seen.at_s, seen.serving)),
            Some(i) if admitted => {
                self.first_admitted[i] = Some(seen.round);
                if self.a_pass.is_none() {
                    self.a_pass = pass;
                }
            }
            Some(_) => {}
        }
        self.answered[seen.edge].push(judged);
        if !consistent {
            self.inconsistent_count += 1;
            if self.inconsistent.len() < INCONSISTENT_KEPT {
                self.inconsistent.push(seen);
            }
        }
    }

    /// People per minute over the whole series (first to last sample).
    fn rate(series: &[(f64, i64)]) -> Option<f64> {
        let (first, last) = (series.first()?, series.last()?);
        let span = last.0 - first.0;
        (span > 0.0).then(|| (last.1 - first.1) as f64 / span * 60.0)
    }

    /// Per whole minute since the first sample: people let in that minute.
    fn per_minute(series: &[(f64, i64)]) -> Vec<f64> {
        let Some(first) = series.first() else {
            return Vec::new();
        };
        let at = |t: f64| {
            series
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .copied()
        };
        let span = series.last().map_or(0.0, |l| l.0 - first.0);
        (0..(span / 60.0).floor() as usize)
            .filter_map(|m| {
                let (a, b) = (
                    at(first.0 + 60.0 * m as f64)?,
                    at(first.0 + 60.0 * (m + 1) as f64)?,
                );
                (b.0 > a.0).then(|| (b.1 - a.1) as f64 / (b.0 - a.0) * 60.0)
            })
            .collect()
    }
}

/// A poll answer as the fairness check reads it: the place it is about, and whether it
/// let that place in.
#[derive(Debug, Clone, Copy)]
struct Judged {
    position: i64,
    admitted: bool,
}

/// Pairs of answers from one edge where the later refused a place q and the earlier (in
/// time) admitted a place p > q: that edge's `serving` went backwards, letting a later
/// place in before an earlier one. Not judged by polling round: a round polls in position
/// order and `serving` moves meanwhile, so a round may refuse q and then admit p > q, and
/// q is admitted only a round later, with no answer out of order. Nor across edges: each
/// learns `serving` by push and may lag the other.
fn inversions(answered: &[Vec<Judged>]) -> u64 {
    let mut n = 0;
    for answers in answered {
        // Places this edge has admitted so far: at most one per sampled position (an
        // admitted one is not polled again) and the last place.
        let mut admitted: Vec<i64> = Vec::new();
        for answer in answers {
            if answer.admitted {
                admitted.push(answer.position);
            } else {
                n += admitted.iter().filter(|&&p| p > answer.position).count() as u64;
            }
        }
    }
    n
}

/// The admission run's queue, joined before it opens: who is sampled, and their tickets.
struct Lineup {
    ids: EventIds,
    people: i64,
    opens: Instant,
    joins_overran: bool,
    /// Sampled positions, evenly spread over those expected in the window.
    sampled: Vec<i64>,
    /// Per sampled position (same order): its ticket.
    tickets: Vec<String>,
    /// The last place's (position, ticket): its answers carry an edge's `serving`.
    last: (i64, String),
}

/// Creates the admission event, sets its queue to open after `form.open_delay` and joins
/// everyone at the ledger (what is measured is admission, not joining).
async fn line_up(env: &Env, form: &Form, admin: &Admin, stand: &Stand) -> anyhow::Result<Lineup> {
    let ids = admin.create_event(env, "queue-admission", 100_000).await?;
    let expected = form.admitted_in_window();
    let people = expected + expected / 4 + 100;
    let opens_at =
        chrono::Utc::now() + chrono::TimeDelta::from_std(form.open_delay).context("open delay")?;
    let opens = Instant::now() + form.open_delay;
    admin
        .put_queue(env, &ids.event_id, ADMIT_PER_MINUTE, Some(opens_at))
        .await?;
    let ledger_target = Targets::new(vec![stand.ledger.authority.clone()]);
    let places = join_people(&ledger_target, &ids.event_id, "a", people as u64).await?;
    let joins_overran = Instant::now() > opens;
    let ticket_of = |position: i64| {
        places
            .get(usize::try_from(position - 1).unwrap_or(usize::MAX))
            .filter(|(p, _)| *p == position)
            .map(|(_, t)| t.clone())
    };
    let samples = usize::try_from(expected).unwrap_or(0).clamp(1, SAMPLED_MAX);
    let step = (expected / samples as i64).max(1);
    let sampled: Vec<i64> = (1..=samples as i64).map(|k| k * step).collect();
    let tickets: Vec<String> = sampled
        .iter()
        .map(|&p| ticket_of(p).with_context(|| format!("no ticket for position {p}")))
        .collect::<anyhow::Result<_>>()?;
    let last = places.last().context("nobody joined")?.clone();
    Ok(Lineup {
        ids,
        people,
        opens,
        joins_overran,
        sampled,
        tickets,
        last,
    })
}

async fn admission(
    env: &Env,
    form: &Form,
    admin: &Admin,
    stand: &Stand,
    targets: &Targets,
) -> anyhow::Result<AdmissionRun> {
    let lineup = line_up(env, form, admin, stand).await?;
    tokio::time::sleep_until(lineup.opens.into()).await;
    let mut probes: Vec<KeptConnection> =
        targets.0.iter().map(|a| KeptConnection::new(a)).collect();
    let mut run = AdmissionRun::new(&lineup, probes.len());
    let rounds = (form.admission_window.as_secs_f64() / ROUND.as_secs_f64()).round() as usize + 1;
    let mut ticks = tokio::time::interval(ROUND);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0..rounds {
        ticks.tick().await;
        let at_s = lineup.opens.elapsed().as_secs_f64();
        let (_, serving) = ledger_state(env, &stand.ledger, &lineup.ids.event_id).await?;
        run.ledger.push((at_s, serving));
        let edge = round % probes.len();
        poll_round(&mut run, &lineup, &mut probes[edge], round, edge).await;
    }
    run.inversions = inversions(&run.answered);
    Ok(run)
}

/// One round's polls through one edge: the last place first (its answer carries the
/// edge's `serving`), then every sampled place not yet admitted.
async fn poll_round(
    run: &mut AdmissionRun,
    lineup: &Lineup,
    probe: &mut KeptConnection,
    round: usize,
    edge: usize,
) {
    let waiting: Vec<usize> = (0..run.sampled.len())
        .filter(|&i| run.first_admitted[i].is_none())
        .collect();
    let polls = std::iter::once((None, lineup.last.1.clone())).chain(
        waiting
            .iter()
            .map(|&i| (Some(i), lineup.tickets[i].clone())),
    );
    for (sample, ticket) in polls {
        let seen_at = lineup.opens.elapsed().as_secs_f64();
        let answer = probe
            .send(&poll_call(0, &lineup.ids.event_id, &ticket))
            .await;
        let status = match answer {
            Ok(p) if p.status == 200 => match serde_json::from_slice::<Status>(&p.body) {
                Ok(status) => status,
                Err(_) => {
                    run.poll_failed("200 unreadable".to_owned());
                    continue;
                }
            },
            Ok(p) => {
                run.poll_failed(format!("{} {}", p.status, problem_code(&p.body)));
                continue;
            }
            Err(e) => {
                run.poll_failed(format!("{e:#}"));
                continue;
            }
        };
        let seen = PollSeen {
            round,
            edge,
            at_s: seen_at,
            position: status.position,
            serving: status.serving,
            state: status.state.clone(),
            pass: status.pass.is_some(),
        };
        run.record(sample, seen, status.pass.map(|p| p.token));
    }
}

/// A hold of one ticket on `ids`, with `pass` (if any), as a new customer.
fn hold_call(target: usize, ids: &EventIds, customer: &str, pass: Option<&str>) -> Call {
    let body = json!({"show_id": ids.show_id, "zone_id": ids.zone_ids[0], "quantity": 1, "customer_id": customer});
    let call = Call::post_json(target, HOLDS_ROUTE, &body)
        .header("idempotency-key", uuid::Uuid::new_v4().simple().to_string());
    match pass {
        Some(pass) => call.header(PASS_HEADER, pass),
        None => call,
    }
}

/// `token` with one character of its MAC changed (well inside it: the last character of
/// unpadded base64 may carry unused bits).
fn forge(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    if let Some(at) = bytes.len().checked_sub(10) {
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// One kind of hold in the pass check, through the edges.
#[derive(Debug)]
struct HoldPath {
    name: &'static str,
    sent: u64,
    /// Answers by `status code`.
    answers: BTreeMap<String, u64>,
    /// The expected answers (403 for the pass-less, 201 for the others).
    expected: u64,
    latency_us: Histogram<u64>,
    /// `Server-Timing: pass;dur=` (µs), when reported.
    pass_us: Histogram<u64>,
    failures: u64,
    elapsed_s: f64,
}

impl HoldPath {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            sent: 0,
            answers: BTreeMap::new(),
            expected: 0,
            latency_us: histogram(),
            pass_us: histogram(),
            failures: 0,
            elapsed_s: 0.0,
        }
    }

    fn per_s(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.expected as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    fn granted(&self) -> u64 {
        self.answers
            .iter()
            .filter(|(k, _)| k.starts_with("201"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Every call of `calls` by `clients` closed-loop clients, call `i` of the kind
/// `names[i % names.len()]` (kinds interleaved, so they share the machine's conditions):
/// one figure per kind, `expect_status` being the expected answer.
async fn hold_paths(
    authorities: &[String],
    names: &[&'static str],
    calls: Vec<Call>,
    expect_status: u16,
    clients: usize,
) -> anyhow::Result<Vec<HoldPath>> {
    let mut paths: Vec<HoldPath> = names.iter().map(|n| HoldPath::new(n)).collect();
    let (outcomes, elapsed) = run_calls(authorities, calls, clients).await?;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let path = &mut paths[i % names.len()];
        path.sent += 1;
        path.elapsed_s = elapsed.as_secs_f64();
        let p = match outcome {
            Ok(p) => p,
            Err(_) => {
                path.failures += 1;
                continue;
            }
        };
        let answer = format!("{} {}", p.status, problem_code(&p.body));
        *path.answers.entry(answer.trim().to_owned()).or_default() += 1;
        if p.status == expect_status {
            path.expected += 1;
            path.latency_us
                .saturating_record(p.latency.as_micros().max(1) as u64);
            if let Some(us) = p.timing_us(PASS_METRIC) {
                path.pass_us.saturating_record(us.round().max(1.0) as u64);
            }
        }
    }
    Ok(paths)
}

struct PassRun {
    /// Pass-less, forged and other-event holds on the queued event.
    refused: Vec<HoldPath>,
    /// Holds with a valid pass (queued event) and without a queue (same shape).
    on: HoldPath,
    off: HoldPath,
    /// `/v1/holds` requests from edges at the ledger while the refused kinds ran, and the
    /// edges' outbound POSTs from `holds`.
    reached_ledger: f64,
    edge_outbound: f64,
}

impl PassRun {
    fn refused_sent(&self) -> u64 {
        self.refused.iter().map(|p| p.sent).sum()
    }

    fn refused_granted(&self) -> u64 {
        self.refused.iter().map(HoldPath::granted).sum()
    }

    /// The edge's pass check in µs, and how it was found: the holds component's
    /// `Server-Timing: pass` on holds with a valid pass (else a forged one), else the
    /// latency difference between forged-pass and pass-less refusals.
    fn check_us(&self) -> Option<(f64, String)> {
        let forged = self.refused.iter().find(|p| p.name == REFUSED[1]);
        let reported = std::iter::once(&self.on)
            .chain(forged)
            .find(|p| !p.pass_us.is_empty())
            .map(|p| {
                let how = format!(
                    "`Server-Timing: pass` mean over {} holds, {}; p99 {} µs",
                    count(p.pass_us.len() as f64),
                    p.name,
                    count(p.pass_us.value_at_quantile(0.99) as f64)
                );
                (p.pass_us.mean(), how)
            });
        reported.or_else(|| {
            let none = self.refused.iter().find(|p| p.name == REFUSED[0])?;
            let forged = forged?;
            if none.latency_us.is_empty() || forged.latency_us.is_empty() {
                return None;
            }
            let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64;
            let how = format!(
                "p50 forged-pass refusal − p50 pass-less refusal, within the noise when ≤ 0; the whole forged-pass refusal at the edge: p50 {} ms",
                ms(p50(&forged.latency_us) / 1_000.0)
            );
            Some((p50(&forged.latency_us) - p50(&none.latency_us), how))
        })
    }
}

const REFUSED: [&str; 3] = ["no pass", "forged pass", "another event's pass"];
const GRANTED: [&str; 2] = ["queue on, valid pass", "queue off, no pass"];

async fn edge_holds_outbound(stand: &Stand) -> f64 {
    let mut total = 0.0;
    for edge in &stand.edges {
        if let Ok(text) = edge.scrape().await {
            total += tessera_testkit::metrics::sum_metric(
                &text,
                "edge_outbound_requests_total",
                &[("component", "holds"), ("method", "POST")],
            );
        }
    }
    total
}

async fn pass_check(
    env: &Env,
    form: &Form,
    admin: &Admin,
    stand: &Stand,
    targets: &Targets,
    admission: &AdmissionRun,
) -> anyhow::Result<PassRun> {
    let capacity = (form.pass_holds + 100) as i64;
    let off = admin.create_event(env, "queue-off", capacity).await?;
    let on = admin.create_event(env, "queue-on", capacity).await?;
    let passes = admitted_passes(env, form, admin, stand, targets, &on).await?;
    let edges: Vec<String> = stand.edges.iter().map(|e| e.authority.clone()).collect();
    // Buyers look at the shows first: every edge has both cached.
    for ids in [&off, &on] {
        for edge in &edges {
            load::once(
                edge,
                &Call::get(0, format!("/v1/shows/{}/availability", ids.show_id)),
            )
            .await?;
            load::once(edge, &Call::get(0, format!("/v1/events/{}", ids.event_id))).await?;
        }
    }
    let forged = forge(&passes[0]);
    let refusals = Refusals::new(&on, &forged, admission.a_pass.as_deref());
    // Warm-up (every kind on every edge, a few times): not counted.
    refusals.run(&edges, "warm", 4 * EDGES).await?;
    let ledger_before = edge_requests(env, &stand.ledger, HOLDS_ROUTE).await?;
    let outbound_before = edge_holds_outbound(stand).await;
    let refused = refusals
        .run(&edges, "refused", form.refusals_per_kind)
        .await?;
    let reached_ledger = edge_requests(env, &stand.ledger, HOLDS_ROUTE).await? - ledger_before;
    let edge_outbound = edge_holds_outbound(stand).await - outbound_before;

    // Valid passes on the queued event and no pass on the same shape without a queue,
    // interleaved.
    let calls = passes
        .iter()
        .enumerate()
        .flat_map(|(i, pass)| {
            [
                hold_call(i % EDGES, &on, &format!("on-{i}"), Some(pass)),
                hold_call(i % EDGES, &off, &format!("off-{i}"), None),
            ]
        })
        .collect();
    let mut granted = hold_paths(&edges, &GRANTED, calls, 201, HOLD_CLIENTS)
        .await?
        .into_iter();
    let (Some(on_path), Some(off_path)) = (granted.next(), granted.next()) else {
        bail!("the granted holds' figures are missing");
    };
    Ok(PassRun {
        refused,
        on: on_path,
        off: off_path,
        reached_ledger,
        edge_outbound,
    })
}

/// Queues `form.pass_holds` people on `on` (a queue letting everyone in at once), waits
/// until the ledger serves them all and collects each one's pass from a poll.
async fn admitted_passes(
    env: &Env,
    form: &Form,
    admin: &Admin,
    stand: &Stand,
    targets: &Targets,
    on: &EventIds,
) -> anyhow::Result<Vec<String>> {
    admin
        .put_queue(env, &on.event_id, ADMIT_ALL_PER_MINUTE, None)
        .await?;
    let places = join_people(targets, &on.event_id, "p", form.pass_holds as u64).await?;
    let deadline = Instant::now() + ADMIT_WAIT;
    loop {
        let (_, serving) = ledger_state(env, &stand.ledger, &on.event_id).await?;
        if serving >= form.pass_holds as i64 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the pass-check queue let in {serving} of {} in {ADMIT_WAIT:?}",
                form.pass_holds
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let targets_n = targets.0.len();
    let polls: Vec<Call> = places
        .iter()
        .enumerate()
        .map(|(i, (_, ticket))| poll_call(i % targets_n, &on.event_id, ticket))
        .collect();
    let (outcomes, _) = run_calls(&targets.0, polls, SETUP_CLIENTS).await?;
    let passes: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .filter_map(|p| {
            serde_json::from_slice::<Status>(&p.body)
                .ok()?
                .pass
                .map(|p| p.token)
        })
        .collect();
    if passes.len() != form.pass_holds {
        bail!(
            "{} of {} admitted people got a pass",
            passes.len(),
            form.pass_holds
        );
    }
    Ok(passes)
}

/// The holds an edge must refuse on the queued event: no pass, a forged one and (when the
/// admission run got one) another event's pass.
struct Refusals<'a> {
    on: &'a EventIds,
    kinds: Vec<(&'static str, Option<&'a str>)>,
}

impl<'a> Refusals<'a> {
    fn new(on: &'a EventIds, forged: &'a str, other_event_pass: Option<&'a str>) -> Self {
        let kinds = [
            (REFUSED[0], None),
            (REFUSED[1], Some(forged)),
            (REFUSED[2], other_event_pass),
        ]
        .into_iter()
        .enumerate()
        .filter(|(k, (_, pass))| *k == 0 || pass.is_some())
        .map(|(_, kind)| kind)
        .collect();
        Self { on, kinds }
    }

    /// `per_kind` holds of every kind, interleaved, each over both edges in turn; one
    /// client: the refusals' latency difference is the verification, not queueing on the
    /// shared cores.
    async fn run(
        &self,
        edges: &[String],
        tag: &str,
        per_kind: usize,
    ) -> anyhow::Result<Vec<HoldPath>> {
        let kinds = self.kinds.len();
        let calls = (0..per_kind * kinds)
            .map(|i| {
                let target = (i / kinds) % EDGES;
                hold_call(
                    target,
                    self.on,
                    &format!("{tag}-{i}"),
                    self.kinds[i % kinds].1,
                )
            })
            .collect();
        let names: Vec<&'static str> = self.kinds.iter().map(|(name, _)| *name).collect();
        hold_paths(edges, &names, calls, 403, REFUSAL_CLIENTS).await
    }
}

fn report(section: &mut Section, form: &Form, measured: &Measured) {
    let via = if measured.via_edges {
        format!("through {EDGES} edges (the edges in turn)")
    } else {
        "**through the ledger directly: the edges do not serve the queue routes (no queue component)**".to_owned()
    };
    section.notes.push(format!(
        "One ledger (`QUEUE_TICK_MS` {TICK_MS}), {EDGES} edge nodes; joins and polls {via}; holds always through the edges."
    ));
    join_report(
        section,
        form,
        &measured.joins,
        measured.ledger_joins.as_ref(),
    );
    admission_report(section, form, &measured.admission, measured.via_edges);
    pass_report(section, &measured.pass);
    section.data = data(measured);
}

fn join_report(section: &mut Section, form: &Form, joins: &JoinRun, ledger: Option<&JoinRun>) {
    join_goal(section, form, joins, ledger);
    for (path, run) in std::iter::once(("through the edges", joins))
        .chain(ledger.map(|l| ("straight at the ledger", l)))
    {
        join_positions_check(section, path, run);
    }
    section.tables.push(join_table(joins, ledger));
}

/// The joins' method note and `queue.join_rate`.
fn join_goal(section: &mut Section, form: &Form, joins: &JoinRun, ledger: Option<&JoinRun>) {
    let f = &joins.figures;
    section.notes.push(format!(
        "Joins: open loop, {} joins due at fixed intervals over {:.0} s ({}/s), each `POST /v1/events/{{id}}/queue` with its own `Idempotency-Key`, \
         at most {} connections per target (a join finding none free waits and counts as late). Latency runs from when the join was due, so a \
         backlog shows in it. Afterwards the ledger's `joined` is compared with the 201s, and the answers' positions must be exactly 1..=N.",
        count(form.people as f64),
        form.join_window.as_secs_f64(),
        count(form.people as f64 / form.join_window.as_secs_f64()),
        form.join_connections
    ));
    let all_answered = f.failed == 0 && joins.unanswered == 0 && f.ok == form.people;
    let measured = format!(
        "{} joins/s ({} of {} in {:.1} s), p50 {} ms, p99 {} ms, max {} ms; {} errors, late {}",
        count(f.ok as f64 / f.elapsed_s.max(1e-9)),
        count(f.ok as f64),
        count(form.people as f64),
        f.elapsed_s,
        ms(f.p50_ms),
        ms(f.p99_ms),
        ms(f.max_ms),
        count(f.failed as f64),
        f.late_by_cause(),
    );
    let measured = match ledger {
        Some(l) => format!(
            "{measured}; straight at the ledger (baseline, {} joins at the same rate): {} joins/s, p99 {} ms",
            count(l.figures.due as f64),
            count(l.figures.ok_per_s),
            ms(l.figures.p99_ms)
        ),
        None => measured,
    };
    section.goal(
        "queue.join_rate",
        &format!(
            "{} people join within {:.0} s through {EDGES} edges: all answered, p99 < 100 ms",
            count(form.people as f64),
            form.join_window.as_secs_f64()
        ),
        measured,
        all_answered
            && f.p99_ms < GOAL_JOIN_P99_MS
            && f.elapsed_s <= form.join_window.as_secs_f64() * 1.1,
    );
}

/// Positions handed out exactly once each, 1..=N, on one path's joins.
fn join_positions_check(section: &mut Section, path: &str, run: &JoinRun) {
    let a = &run.audit;
    let detail = format!(
            "{} answered 201, ledger joined {}; {} duplicate, {} out of range, {} positions no answer had ({} joins unanswered)",
            count(a.answered as f64),
            count(a.joined as f64),
            a.duplicates,
            a.out_of_range,
            a.missing,
            run.unanswered
        );
    // A place handed out whose answer was lost (timeout) is not a gap in the line.
    let passed = a.duplicates == 0 && a.out_of_range == 0 && a.missing <= run.unanswered;
    section.check(
            &format!("queue positions are exactly 1..=N, one per 201 (joined at the ledger = 201s): joins {path}"),
            passed,
        if a.exact() { format!("exact: {detail}") } else { detail },
    );
}

/// The joins' table: through the edges and (when measured) straight at the ledger.
fn join_table(joins: &JoinRun, ledger: Option<&JoinRun>) -> Table {
    let mut table = Table::new(
        "Joins (open loop), through the edges and (baseline, a fifth of the people at the same rate) straight at the ledger",
        &[
            "path",
            "due",
            "201",
            "other answers",
            "unanswered",
            "late",
            "joins/s",
            "p50 (ms)",
            "p99 (ms)",
            "p99.9 (ms)",
            "max (ms)",
            "ledger joined",
        ],
    );
    let first = if ledger.is_some() {
        "edges"
    } else {
        "ledger (no edge queue component)"
    };
    for (path, run) in std::iter::once((first, joins)).chain(ledger.map(|l| ("ledger directly", l)))
    {
        let f = &run.figures;
        let other = if run.other.is_empty() {
            "0".to_owned()
        } else {
            run.other
                .iter()
                .map(|(k, n)| format!("{n} × {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.row(vec![
            path.to_owned(),
            count(f.due as f64),
            count(f.ok as f64),
            other,
            count(run.unanswered as f64),
            f.late_by_cause(),
            count(f.ok_per_s),
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.p999_ms),
            ms(f.max_ms),
            count(run.audit.joined as f64),
        ]);
    }
    table
}

fn admission_report(section: &mut Section, form: &Form, run: &AdmissionRun, via_edges: bool) {
    admission_note(section, form, run, via_edges);
    admission_goal(section, form, run);
    section.tables.push(admission_table(run, via_edges));
    if !run.poll_failures.is_empty() {
        section.notes.push(format!(
            "Admission polls that failed: {:?}",
            run.poll_failures
        ));
    }
}

fn rate_text(rate: Option<f64>) -> String {
    rate.map_or("n/a".to_owned(), |r| format!("{r:.1}"))
}

fn admission_note(section: &mut Section, form: &Form, run: &AdmissionRun, via_edges: bool) {
    let polled = if via_edges {
        "one edge a round, the edges in turn"
    } else {
        "the ledger"
    };
    section.notes.push(format!(
        "Admission: {} people join a queue opening {:.0} s later at {ADMIT_PER_MINUTE}/min{}; from the opening, every {} s for {:.0} s: the ledger's \
         `serving` (`GET …/queue/state`) and polls ({polled}) of {} sampled positions spread over the first {} places, in position order, until each \
         is seen admitted, plus the last place (its answers carry that edge's `serving`). Rate = Δserving/Δt × 60 between the first and last samples; \
         an inversion is a pair of answers from one edge where the later refused a place after the earlier admitted a later place (that edge's \
         `serving` gone backwards; judged by answers, not rounds, since `serving` moves while a round polls); an answer is inconsistent if its state disagrees with its own `serving` or an admitted answer lacks a pass.",
        count(run.people as f64),
        form.open_delay.as_secs_f64(),
        if run.joins_overran { " (the joins ran past the opening; the line never ran dry, so the rate is unaffected)" } else { "" },
        ROUND.as_secs(),
        form.admission_window.as_secs_f64(),
        run.sampled.len(),
        count(form.admitted_in_window() as f64),
    ));
}

/// `queue.admission_accuracy` and the position-order check.
fn admission_goal(section: &mut Section, form: &Form, run: &AdmissionRun) {
    let target = ADMIT_PER_MINUTE as f64;
    let within =
        |rate: Option<f64>| rate.is_some_and(|r| (r / target - 1.0).abs() <= GOAL_RATE_TOLERANCE);
    let ledger_rate = AdmissionRun::rate(&run.ledger);
    let edge_rates: Vec<Option<f64>> = run.edges.iter().map(|s| AdmissionRun::rate(s)).collect();
    let minutes = AdmissionRun::per_minute(&run.ledger);
    let fmt = rate_text;
    let admitted_seen = run.first_admitted.iter().filter(|a| a.is_some()).count();
    let measured = format!(
        "{}/min at the ledger ({:+.1}%){}; as the edges' answers show: {}; {} inversions among {} sampled positions ({} seen admitted), {} inconsistent answers",
        fmt(ledger_rate),
        ledger_rate.map_or(f64::NAN, |r| (r / target - 1.0) * 100.0),
        if minutes.is_empty() { String::new() } else {
            format!(" (per minute: {})", minutes.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(", "))
        },
        edge_rates.iter().map(|r| fmt(*r)).collect::<Vec<_>>().join(" / "),
        run.inversions,
        run.sampled.len(),
        admitted_seen,
        run.inconsistent_count,
    );
    section.goal(
        "queue.admission_accuracy",
        &format!("passes issued per minute within ±5% of admit_per_minute ({ADMIT_PER_MINUTE}) over {:.0} s; admitted in position order", form.admission_window.as_secs_f64()),
        measured,
        within(ledger_rate)
            && edge_rates.iter().all(|r| within(*r))
            && minutes.iter().all(|m| within(Some(*m)))
            && run.inversions == 0
            && run.inconsistent_count == 0,
    );
    section.check(
        "the queue admits in position order; every admitted answer carries a pass",
        run.inversions == 0 && run.inconsistent_count == 0 && admitted_seen > 0,
        format!(
            "{} inversions, {} inconsistent of {} answers, {admitted_seen} of {} sampled seen admitted{}",
            run.inversions,
            run.inconsistent_count,
            run.answers,
            run.sampled.len(),
            if run.inconsistent_count == 0 { String::new() } else { format!("; first: {:?}", run.inconsistent.first()) }
        ),
    );
}

/// Admission rates as the ledger and each edge's polls saw them.
fn admission_table(run: &AdmissionRun, via_edges: bool) -> Table {
    let mut table = Table::new(
        &format!("Admission at {ADMIT_PER_MINUTE}/min: people let in per minute"),
        &[
            "seen at",
            "samples",
            "span (s)",
            "rate (/min)",
            "error",
            "per whole minute",
        ],
    );
    let row = |name: String, series: &[(f64, i64)]| {
        let rate = AdmissionRun::rate(series);
        let error = rate.map(|r| r / ADMIT_PER_MINUTE as f64 - 1.0);
        let span = series.last().map_or(0.0, |l| l.0) - series.first().map_or(0.0, |f| f.0);
        vec![
            name,
            count(series.len() as f64),
            format!("{span:.1}"),
            rate_text(rate),
            error.map_or("n/a".to_owned(), |e| format!("{:+.1}%", e * 100.0)),
            AdmissionRun::per_minute(series)
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]
    };
    table.row(row("ledger (queue/state)".to_owned(), &run.ledger));
    for (i, series) in run.edges.iter().enumerate() {
        let name = if via_edges {
            format!("edge {i} (polls)")
        } else {
            "ledger (polls)".to_owned()
        };
        table.row(row(name, series));
    }
    table
}

fn pass_report(section: &mut Section, pass: &PassRun) {
    section.notes.push(format!(
        "Pass check: a queued event letting everyone in (`admit_per_minute` {ADMIT_ALL_PER_MINUTE}); holds of one ticket, each a new customer, \
         through the edges in turn. Refused kinds, interleaved, by {REFUSAL_CLIENTS} closed-loop client after a short warm-up: without a pass, with a forged \
         pass (one character of a valid pass's MAC changed) and with another event's valid pass — all must be refused 403 by the edge; the ledger's \
         `/v1/holds` requests from edges and the edges' outbound POSTs from `holds` are counted meanwhile. Then, interleaved, {HOLD_CLIENTS} clients: \
         holds with valid passes (one each) and holds on the same event shape without a queue. The edge's check in µs: `Server-Timing: {PASS_METRIC};dur=` \
         when the holds component reports it, else the p50 difference between forged-pass and pass-less refusals (both answered at the edge, the \
         first with the HMAC check; at this scale within the noise of a 2-core machine)."));
    let sent = pass.refused_sent();
    let share = if sent > 0 {
        pass.reached_ledger / sent as f64
    } else {
        f64::NAN
    };
    let refused_403: u64 = pass.refused.iter().map(|p| p.expected).sum();
    let check = pass.check_us();
    let queue_cost_us = pass.on.latency_us.value_at_quantile(0.5) as f64
        - pass.off.latency_us.value_at_quantile(0.5) as f64;
    let measured = format!(
        "{}; {} of {} pass-less holds reached the ledger ({:.1}%; edges' outbound hold POSTs {}), {} refused 403; a hold with a valid pass vs no queue: p50 {} vs {} ms ({:+.0} µs, edge and ledger checks)",
        check.map_or("pass check cost n/a".to_owned(), |(us, how)| format!("{us:.1} µs per pass check ({how})")),
        count(pass.reached_ledger),
        count(sent as f64),
        share * 100.0,
        count(pass.edge_outbound),
        count(refused_403 as f64),
        ms(quantile_ms(&pass.on.latency_us, 0.5)),
        ms(quantile_ms(&pass.off.latency_us, 0.5)),
        queue_cost_us,
    );
    section.goal(
        "queue.pass_check",
        "the edge's cost to verify a pass on a hold (µs); pass-less holds reaching the ledger: 0",
        measured,
        sent > 0 && pass.reached_ledger == 0.0 && pass.edge_outbound == 0.0 && refused_403 == sent,
    );
    section.check(
        "no hold without a valid pass is granted (edge or ledger)",
        pass.refused_granted() == 0 && sent > 0,
        format!("{} of {} granted", pass.refused_granted(), sent),
    );
    section.tables.push(pass_table(pass));
}

/// Every hold kind of the pass check: answers, rate, latency, the edge's check.
fn pass_table(pass: &PassRun) -> Table {
    let mut table = Table::new(
        &format!("Holds through the edges: refused kinds ({REFUSAL_CLIENTS} client), granted ({HOLD_CLIENTS} clients), each group interleaved"),
        &[
            "hold",
            "sent",
            "answers",
            "holds/s (expected answers, in the mixed run)",
            "p50 (ms)",
            "p99 (ms)",
            "pass check µs (Server-Timing, mean)",
            "errors",
        ],
    );
    for p in pass.refused.iter().chain([&pass.on, &pass.off]) {
        table.row(vec![
            p.name.to_owned(),
            count(p.sent as f64),
            p.answers
                .iter()
                .map(|(k, n)| format!("{n} × {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            count(p.per_s()),
            ms(quantile_ms(&p.latency_us, 0.5)),
            ms(quantile_ms(&p.latency_us, 0.99)),
            if p.pass_us.is_empty() {
                "—".to_owned()
            } else {
                format!("{:.1}", p.pass_us.mean())
            },
            count(p.failures as f64),
        ]);
    }
    table
}

fn data(measured: &Measured) -> Value {
    let joins = &measured.joins;
    let a = &measured.admission;
    let p = &measured.pass;
    let path = |h: &HoldPath| {
        json!({"hold": h.name, "sent": h.sent, "answers": h.answers, "expected": h.expected, "per_s": h.per_s(),
               "p50_ms": quantile_ms(&h.latency_us, 0.5), "p99_ms": quantile_ms(&h.latency_us, 0.99),
               "pass_check_us_mean": (!h.pass_us.is_empty()).then(|| h.pass_us.mean()), "errors": h.failures})
    };
    json!({
        "via_edges": measured.via_edges,
        "join_rate": {"figures": joins.figures, "other": joins.other, "unanswered": joins.unanswered, "positions": joins.audit},
        "join_rate_ledger_baseline": measured.ledger_joins.as_ref().map(|l| json!({"figures": l.figures, "other": l.other, "unanswered": l.unanswered, "positions": l.audit})),
        "admission": {"admit_per_minute": ADMIT_PER_MINUTE, "people": a.people, "ledger_rate": AdmissionRun::rate(&a.ledger),
                      "ledger_per_minute": AdmissionRun::per_minute(&a.ledger),
                      "edge_rates": a.edges.iter().map(|s| AdmissionRun::rate(s)).collect::<Vec<_>>(),
                      "ledger_series": a.ledger, "edge_series": a.edges, "sampled": a.sampled,
                      "first_admitted_round": a.first_admitted, "inversions": a.inversions,
                      "inconsistent": a.inconsistent_count, "inconsistent_first": a.inconsistent, "answers": a.answers, "poll_failures": a.poll_failures,
                      "joins_overran_opening": a.joins_overran},
        "pass_check": {"reached_ledger": p.reached_ledger, "edge_outbound_posts": p.edge_outbound,
                       "check_us": p.check_us().map(|(us, how)| json!({"us": us, "method": how})),
                       "paths": p.refused.iter().chain([&p.on, &p.off]).map(path).collect::<Vec<_>>()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_audit_finds_gaps_and_duplicates() {
        assert!(PositionAudit::new(&[3, 1, 2], 3).exact());
        let gap = PositionAudit::new(&[1, 3], 3);
        assert_eq!((gap.missing, gap.duplicates, gap.exact()), (1, 0, false));
        let dup = PositionAudit::new(&[1, 2, 2], 3);
        assert_eq!((dup.missing, dup.duplicates), (1, 1));
        assert_eq!(PositionAudit::new(&[1, 4], 3).out_of_range, 1);
    }

    fn admit(position: i64) -> Judged {
        Judged {
            position,
            admitted: true,
        }
    }

    fn refuse(position: i64) -> Judged {
        Judged {
            position,
            admitted: false,
        }
    }

    #[test]
    fn inversions_count_later_positions_admitted_first() {
        // In order at each edge: none.
        let in_order = vec![refuse(10), refuse(20), admit(10), refuse(20), admit(20)];
        assert_eq!(inversions(&[in_order]), 0);
        // `serving` moving mid-round: 10 refused, then 20 admitted in the same round, and
        // 10 admitted the round after. By rounds 20 came first; by answers nothing went
        // backwards.
        let mid_round = vec![refuse(10), admit(20), admit(10)];
        assert_eq!(inversions(&[mid_round]), 0);
        // `serving` going backwards at one edge: 30 admitted, then 25 refused.
        assert_eq!(inversions(&[vec![admit(30), refuse(25)]]), 1);
        // Exact: one per (earlier admission of a later place, refusal) pair: 25 after 30
        // and 40, 35 after 40, and 25 again after both.
        let backwards = vec![admit(30), admit(40), refuse(25), refuse(35), refuse(25)];
        assert_eq!(inversions(std::slice::from_ref(&backwards)), 5);
        // Refusing a later place after admitting an earlier one is order, not inversion.
        assert_eq!(inversions(&[vec![admit(30), refuse(31)]]), 0);
        // Another edge's lag is its own (it learns `serving` by push)…
        assert_eq!(inversions(&[vec![admit(30)], vec![refuse(25)]]), 0);
        // …and each edge's inversions add up.
        assert_eq!(
            inversions(&[backwards, vec![refuse(1), admit(9), refuse(8)]]),
            6
        );
    }

    #[test]
    fn rates_are_per_minute() {
        let series = [(0.0, 0), (30.0, 300), (60.0, 600), (120.0, 1_190)];
        assert_eq!(AdmissionRun::rate(&series), Some(595.0));
        assert_eq!(AdmissionRun::per_minute(&series), vec![600.0, 590.0]);
    }

    #[test]
    fn a_forged_token_differs_inside_its_mac() {
        let token = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let forged = forge(token);
        assert_ne!(forged, token);
        assert_eq!(forged.len(), token.len());
    }
}

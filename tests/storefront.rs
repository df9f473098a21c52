//! The storefront in a real browser (Debian's Chromium driven by playwright-core): a real
//! ledger, PostgreSQL, Redis and a `tessera-edge` process on `spin.toml` serving the app at
//! `/`; each test runs one scenario, `storefront/tests/scenarios/<name>.mjs`, which fails
//! on any page error, console error or CSP violation (`storefront/tests/kit.mjs`).
//!
//! Adding a scenario: write the `.mjs` file, then a test here that starts a
//! [`Storefront`] and calls [`Storefront::run`] with its name and the JSON it reads with
//! `fixture()`; then check at the ledger what the scenario should have changed.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_testkit::browser::{run_scenario, BrowserError, NodeScript};
use tessera_testkit::edge::{EdgeNode, EdgeOptions, EDGE_KEY};
use tessera_testkit::ledger::{event_body, spawn_app_with, zone_counters, Fixture, TestApp};
use tessera_testkit::queue::join;
use tessera_testkit::wait_until;

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// The sale's general-admission zone: its name (the page's labels name it) and size.
const GA_ZONE: &str = "Standing";
const GA_CAPACITY: i64 = 10;
/// The sale's assigned zone: two rows of six.
const SEAT_ROW: &str = "A";
/// People who join the queue before the scenario's buyer, and the rate they are let in at
/// once the queue opens (when the buyer has joined): the buyer waits a few seconds.
const QUEUE_AHEAD: usize = 5;
const QUEUE_ADMIT_PER_MINUTE: i64 = 60;
/// The browser's start and the walk to the waiting room, on a loaded machine.
const BROWSER_JOIN_LIMIT: Duration = Duration::from_secs(60);

/// A ledger and an edge node in front of it, serving the storefront.
struct Storefront {
    ledger: TestApp,
    edge: EdgeNode,
}

/// A published event on sale now: general admission (`GA_ZONE`) and an assigned zone.
struct Sale {
    fixture: Fixture,
    ga_zone: String,
    seat_zone: String,
    title: String,
    /// A word only this event's title has: the scenario searches for it.
    search: String,
}

impl Sale {
    fn ga_zone(&self) -> &str {
        &self.ga_zone
    }

    fn seat_zone(&self) -> &str {
        &self.seat_zone
    }

    /// What the scenarios read with `fixture()`.
    fn json(&self) -> Value {
        json!({
            "event_id": self.fixture.event_id, "show_id": self.fixture.show_id, "title": self.title,
            "search": self.search, "ga_zone_id": self.ga_zone(), "ga_zone_name": GA_ZONE,
            "capacity": GA_CAPACITY, "seat_zone_id": self.seat_zone(), "row": SEAT_ROW,
        })
    }
}

impl Storefront {
    async fn start(pool: PgPool) -> Self {
        let ledger = spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await;
        // Started once its Redis subscriptions are live: the app's reads stay fresh.
        let edge = EdgeNode::start_for_test(EdgeOptions::for_app(EDGE_BIN, &ledger)).await;
        Self { ledger, edge }
    }

    async fn sale(&self) -> Sale {
        let search = format!("gala{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let title = format!("Storefront Gala {search}");
        let standing = json!({"name": GA_ZONE, "price_minor": 4500, "currency": "EUR",
                              "capacity": GA_CAPACITY, "max_per_order": GA_CAPACITY});
        let stalls = json!({"name": "Stalls", "price_minor": 5000, "currency": "EUR", "seating": "assigned",
                            "max_per_order": 6, "seats": {"rows": [{"row": SEAT_ROW, "seats": 6}, {"row": "B", "seats": 6}]}});
        let mut body = event_body(&search, vec![standing, stalls]);
        body["title"] = json!(title);
        let fixture = self.ledger.publish_event(body).await;
        let (status, event) = self
            .ledger
            .get_json(&format!("/v1/events/{}", fixture.event_id))
            .await;
        assert_eq!(status, 200, "{event}");
        // The answer lists zones by their order, not as created: find each by its seating.
        let zone = |seating: &str| {
            event["shows"][0]["zones"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|z| z["seating"] == seating)
                .and_then(|z| z["zone_id"].as_str())
                .expect("zone")
                .to_owned()
        };
        Sale {
            ga_zone: zone("general_admission"),
            seat_zone: zone("assigned"),
            fixture,
            title,
            search,
        }
    }

    /// Runs the scenario against the edge; the test fails with everything it printed.
    async fn run(&self, scenario: &str, fixture: &Value) {
        if let Err(e) = run_scenario(scenario, &self.edge.base, fixture).await {
            panic!("scenario {scenario}: {e}");
        }
    }

    /// Puts the event's queue on at `QUEUE_ADMIT_PER_MINUTE`, letting people in from `opens_at`.
    async fn queue(&self, event_id: &str, opens_at: DateTime<Utc>) {
        let body = json!({"enabled": true, "admit_per_minute": QUEUE_ADMIT_PER_MINUTE,
                          "session_minutes": 10, "opens_at": opens_at});
        let response = self
            .ledger
            .admin(
                reqwest::Method::PUT,
                &format!("/admin/v1/events/{event_id}/queue"),
                &body,
            )
            .await;
        assert_eq!(response.status(), 200, "queue settings");
    }

    /// The holds of `zone_id` at the ledger: (status, quantity, seats).
    async fn holds(&self, zone_id: &str) -> Vec<(String, i32, Vec<i32>)> {
        sqlx::query_as(
            "select status, quantity, coalesce((select array_agg(seat_index order by seat_index)
                      from seats s where s.hold_id = h.id), '{}')
             from holds h where zone_id = $1::uuid order by created_at",
        )
        .bind(zone_id)
        .fetch_all(&self.ledger.pool)
        .await
        .expect("holds")
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_storefront_loads_on_a_phone_and_a_desktop(pool: PgPool) {
    let storefront = Storefront::start(pool).await;
    storefront.run("smoke", &json!({})).await;
}

/// Browse → search → event → hold 2 → checkout → 2 QR codes; a second buyer sees the
/// availability drop by 2 without a reload; one order at the ledger, with its buyer.
#[sqlx::test(migrations = "../../migrations")]
async fn a_buyer_finds_the_event_holds_two_and_gets_two_qr_codes(pool: PgPool) {
    let storefront = Storefront::start(pool.clone()).await;
    let sale = storefront.sale().await;
    storefront.run("buy", &sale.json()).await;

    assert_eq!(
        storefront.holds(sale.ga_zone()).await,
        vec![("confirmed".to_owned(), 2, vec![])],
        "one order of 2; the over-large attempt held nothing"
    );
    let (available, held, sold, _) = zone_counters(&pool, sale.ga_zone()).await;
    assert_eq!((available, held, sold), (8, 0, 2));
    let buyer: (Option<String>, Option<String>) =
        sqlx::query_as("select buyer_name, buyer_email from holds where zone_id = $1::uuid")
            .bind(sale.ga_zone())
            .fetch_one(&pool)
            .await
            .expect("buyer");
    assert_eq!(
        buyer,
        (
            Some("Ada Lovelace".to_owned()),
            Some("ada@example.com".to_owned())
        )
    );
}

/// Three seats picked on the map are held by one hold; the stale pick held nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn seats_picked_on_the_map_are_held_and_a_stale_pick_is_refused(pool: PgPool) {
    let storefront = Storefront::start(pool).await;
    let sale = storefront.sale().await;
    storefront.run("seats", &sale.json()).await;

    assert_eq!(
        storefront.holds(sale.seat_zone()).await,
        vec![("held".to_owned(), 3, vec![0, 1, 2])],
        "seats 1-3 of row A in one hold; the refused pick of seats 3 and 4 held nothing"
    );
}

/// The waiting room lets the buyer in by itself; the hold carries the admission pass.
#[sqlx::test(migrations = "../../migrations")]
async fn a_queued_buyer_waits_is_admitted_and_holds_with_a_pass(pool: PgPool) {
    let storefront = Storefront::start(pool.clone()).await;
    let sale = storefront.sale().await;
    let event = sale.fixture.event_id.as_str();
    // Closed until the buyer has joined: the page shows a wait whatever the machine's speed.
    storefront
        .queue(event, Utc::now() + TimeDelta::hours(1))
        .await;
    for _ in 0..QUEUE_AHEAD {
        let (status, _) = join(
            &storefront.ledger.client,
            &storefront.ledger.base,
            event,
            None,
        )
        .await;
        assert_eq!(status, 201);
    }
    let mut fixture = sale.json();
    fixture["ahead"] = json!(QUEUE_AHEAD);
    let open_once_joined = async {
        wait_until(
            "the browser's buyer joins the queue",
            BROWSER_JOIN_LIMIT,
            || async {
                let joined: (i64,) =
                    sqlx::query_as("select joined from event_queues where event_id = $1::uuid")
                        .bind(event)
                        .fetch_one(&pool)
                        .await
                        .expect("queue");
                joined.0 > QUEUE_AHEAD as i64
            },
        )
        .await;
        storefront.queue(event, Utc::now()).await;
    };
    tokio::join!(storefront.run("queue", &fixture), open_once_joined);

    let passes: Vec<(Option<String>,)> =
        sqlx::query_as("select pass_id::text from holds where zone_id = $1::uuid")
            .bind(sale.ga_zone())
            .fetch_all(&pool)
            .await
            .expect("holds");
    assert_eq!(passes.len(), 1, "one hold");
    assert!(
        passes[0].0.is_some(),
        "the hold was made with an admission pass"
    );
}

/// The door page checks a bought ticket in once; the second scan is refused.
#[sqlx::test(migrations = "../../migrations")]
async fn the_door_page_checks_a_ticket_in_once(pool: PgPool) {
    let storefront = Storefront::start(pool.clone()).await;
    let sale = storefront.sale().await;
    let body = json!({"show_id": sale.fixture.show_id, "zone_id": sale.ga_zone(), "quantity": 1, "customer_id": "door-buyer"});
    let (_, confirmed) = storefront.ledger.buy(&body).await;
    let code = confirmed["tickets"][0]["code"].as_str().expect("code");
    let gate = "North 1";
    let token = storefront
        .ledger
        .gate_token(&sale.fixture.event_id, gate)
        .await;
    storefront
        .run(
            "door",
            &json!({"gate_token": token, "gate": gate, "code": code}),
        )
        .await;

    let scans: Vec<(String,)> = sqlx::query_as("select result from checkins order by recorded_at")
        .fetch_all(&pool)
        .await
        .expect("checkins");
    let results: Vec<&str> = scans.iter().map(|(r,)| r.as_str()).collect();
    assert_eq!(results[..2], ["ok", "already_redeemed"], "{results:?}");
    let status: (String,) = sqlx::query_as("select status from tickets where zone_id = $1::uuid")
        .bind(sale.ga_zone())
        .fetch_one(&pool)
        .await
        .expect("ticket");
    assert_eq!(status.0, "checked_in");
}

/// A hold whose answer was lost, retried by a double click, is one hold at the ledger.
#[sqlx::test(migrations = "../../migrations")]
async fn a_lost_answer_and_a_double_click_make_one_hold(pool: PgPool) {
    let storefront = Storefront::start(pool).await;
    let sale = storefront.sale().await;
    storefront.run("double_click", &sale.json()).await;

    assert_eq!(
        storefront.holds(sale.ga_zone()).await,
        vec![("held".to_owned(), 2, vec![])],
        "one hold, though three requests were sent"
    );
}

/// The kit itself, on pages it serves by interception (no storefront): what must fail a
/// scenario (a CSP violation, console and page errors, no app-ready) is seen, and a known
/// QR code is read. Without it a kit that noticed nothing would pass every scenario.
#[tokio::test]
async fn the_kit_sees_errors_and_csp_violations_and_reads_qr_codes() {
    if let Err(e) = run_scenario("kit", "http://kit.test", &json!({})).await {
        panic!("scenario kit: {e}");
    }
}

/// The runner's bounds: a script past its limit is stopped (an error quoting what it
/// printed), and a failed one's error carries its stdout and stderr.
#[tokio::test]
async fn the_runner_stops_a_hung_script_and_quotes_a_failed_ones_output() {
    let dir = std::env::temp_dir().join(format!("tessera-runner-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let hung = dir.join("hung.mjs");
    std::fs::write(
        &hung,
        "console.log('started'); setInterval(() => {}, 1000);",
    )
    .expect("script");
    let failing = dir.join("failing.mjs");
    std::fs::write(
        &failing,
        "console.log('to stdout'); console.error('to stderr'); process.exit(3);",
    )
    .expect("script");

    let limit = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let timed_out = NodeScript::new(&hung).limit(limit).run().await;
    assert!(
        matches!(&timed_out, Err(BrowserError::Timeout { output, .. }) if output.contains("started")),
        "{timed_out:?}"
    );
    assert!(
        started.elapsed() < limit * 5,
        "stopped in {:?}",
        started.elapsed()
    );

    let failed = NodeScript::new(&failing).run().await;
    let Err(BrowserError::Failed { status, output, .. }) = failed else {
        panic!("{failed:?}");
    };
    assert_eq!(status.code(), Some(3));
    assert!(
        output.contains("to stdout") && output.contains("to stderr"),
        "{output}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

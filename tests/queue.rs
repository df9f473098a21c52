//! The front door through real edge nodes (DESIGN.md "The front door"): a real ledger,
//! PostgreSQL, Redis and two `tessera-edge` processes on `spin.toml`. Joins reach the
//! ledger; polls, passes and pass refusals are the edge's alone; `serving` reaches every
//! node by push.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::queue::{AdmissionPass, QueueKey, QueueKeys};
use tessera_domain::EventId;
use tessera_testkit::edge::{EdgeNode, EdgeOptions, EDGE_KEY, QUEUE_KEY};
use tessera_testkit::ledger::{spawn_app_with, zone_counters, Fixture, TestApp};
use tessera_testkit::queue::{hold, join, poll, rejoin, wait_admitted};

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// Entries live this long: anything a node learns meanwhile came by push.
const LONG_TTL_MS: &str = "3600000";
const ADMISSION_LIMIT: Duration = Duration::from_secs(20);

async fn ledger(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await
}

async fn node(ledger: &TestApp) -> EdgeNode {
    let options = EdgeOptions::for_app(EDGE_BIN, ledger)
        .env("SPIN_VARIABLE_AVAILABILITY_TTL_MS", LONG_TTL_MS)
        .env("SPIN_VARIABLE_CATALOG_TTL_MS", LONG_TTL_MS);
    let node = EdgeNode::start_for_test(options).await;
    node.wait_subscribed(Duration::from_secs(10))
        .await
        .expect("subscribed");
    node
}

fn ga(fixture: &Fixture, customer: &str) -> Value {
    json!({"show_id": fixture.show_id, "zone_id": fixture.zone_ids[0], "quantity": 1, "customer_id": customer})
}

#[sqlx::test(migrations = "../../migrations")]
async fn edges_refuse_passless_holds_alone_and_admit_with_their_own_passes(pool: PgPool) {
    let ledger = ledger(pool.clone()).await;
    let (a, b) = (node(&ledger).await, node(&ledger).await);
    let client = reqwest::Client::new();
    let fixture = ledger.event_with_zone(10).await;
    let event = fixture.event_id.as_str();
    ledger.queue_on(event, 6_000).await;

    // No pass, a forged one: refused by the edge, the ledger never asked.
    let (status, problem) = hold(&client, &a.url(""), &ga(&fixture, "ann"), None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("pass_required")),
        "{problem}"
    );
    assert_eq!(problem["served_by"], "edge");
    // Forged, expired, and another event's (signed with the shared key, so only the
    // event and the time give them away).
    let keys = QueueKeys {
        current: QueueKey::parse(QUEUE_KEY).expect("the kit's key"),
        previous: None,
    };
    let pass_for = |event_id: &str, expires_at: DateTime<Utc>| {
        keys.sign_pass(&AdmissionPass {
            event_id: EventId(event_id.parse().expect("uuid")),
            position: 1,
            expires_at,
            pass_id: uuid::Uuid::new_v4(),
        })
    };
    let other = ledger.event_with_zone(5).await;
    let expired = pass_for(event, Utc::now() - TimeDelta::seconds(1));
    let foreign = pass_for(&other.event_id, Utc::now() + TimeDelta::minutes(5));
    for (bad, says) in [
        ("forged", "signed"),
        (expired.as_str(), "expired"),
        (foreign.as_str(), "another event"),
    ] {
        let (status, problem) = hold(&client, &a.url(""), &ga(&fixture, "ann"), Some(bad)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("pass_required")),
            "{problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{problem}"
        );
    }
    assert_eq!(a.outbound(Some("holds"), "POST").await, 0.0);
    assert_eq!(
        zone_counters(&pool, &fixture.zone_ids[0]).await,
        (10, 0, 0, 10)
    );

    // Joined through one node, the same place at another by the ticket alone.
    let (status, joined) = join(&client, &a.url(""), event, Some("ann-1")).await;
    assert_eq!(
        (status, joined["position"].as_i64()),
        (201, Some(1)),
        "{joined}"
    );
    let ticket = joined["ticket"].as_str().expect("ticket");
    let (status, rejoined) = rejoin(&client, &b.url(""), event, ticket.as_bytes()).await;
    assert_eq!(
        (status, rejoined["position"].as_i64()),
        (200, Some(1)),
        "{rejoined}"
    );
    assert_eq!(
        b.outbound(Some("queue"), "POST").await,
        0.0,
        "answered at the edge"
    );

    // Admitted by the other node's poll; its pass holds through the first node and the
    // ledger accepts it (one shared key).
    let admitted = wait_admitted(&client, &b.url(""), event, ticket, ADMISSION_LIMIT).await;
    // The node's copy of the queue reads as the ledger's.
    let (_, at_ledger) = ledger
        .get_json(&format!("/v1/events/{event}/queue/state"))
        .await;
    let at_edge: Value = client
        .get(b.url(&format!("/v1/events/{event}/queue/state")))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(
        at_edge["serving"], at_ledger["serving"],
        "{at_edge} vs {at_ledger}"
    );
    assert_eq!(at_edge["admit_per_minute"], 6_000);
    let pass = admitted["pass"]["token"].as_str().expect("pass");
    let (status, held) = hold(&client, &a.url(""), &ga(&fixture, "ann"), Some(pass)).await;
    assert_eq!(status, 201, "{held}");
    // A bent pass and a bent ticket: refused at the edge.
    let mut bent = pass.to_owned();
    bent.replace_range(50..51, if &bent[50..51] == "A" { "B" } else { "A" });
    let (status, _) = hold(&client, &a.url(""), &ga(&fixture, "ann"), Some(&bent)).await;
    assert_eq!(status, 403);
    assert_eq!(
        a.outbound(Some("holds"), "POST").await,
        1.0,
        "only the admitted hold"
    );
    let (status, problem) = poll(&client, &a.url(""), event, &bent).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("queue_ticket_invalid"))
    );
    // A ticket that is not text is still a ticket sent: refused at the edge, no new place.
    let (status, problem) = rejoin(&client, &b.url(""), event, b"\xff\xfeticket").await;
    assert_eq!(status, 403);
    assert_eq!(
        (problem["code"].as_str(), problem["served_by"].as_str()),
        (Some("queue_ticket_invalid"), Some("edge")),
        "{problem}"
    );
    assert_eq!(
        b.outbound(Some("queue"), "POST").await,
        0.0,
        "no join forwarded"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn serving_reaches_every_node_by_push(pool: PgPool) {
    let ledger = ledger(pool).await;
    let (a, b) = (node(&ledger).await, node(&ledger).await);
    let client = reqwest::Client::new();
    let fixture = ledger.event_with_zone(1).await;
    let event = fixture.event_id.as_str();
    ledger.queue_on(event, 6_000).await;
    // The first in line buys the only ticket: sold out, so nobody more is let in.
    let (_, first) = join(&client, &ledger.base, event, Some("first")).await;
    let first_ticket = first["ticket"].as_str().expect("ticket");
    let admitted = wait_admitted(&client, &ledger.base, event, first_ticket, ADMISSION_LIMIT).await;
    let pass = admitted["pass"]["token"].as_str().expect("pass");
    let (status, held) = hold(&client, &ledger.base, &ga(&fixture, "first"), Some(pass)).await;
    assert_eq!(status, 201, "{held}");
    let mut last = String::new();
    for i in 0..2 {
        let (status, joined) = join(&client, &ledger.base, event, Some(&format!("p{i}"))).await;
        assert_eq!(status, 201);
        last = joined["ticket"].as_str().expect("ticket").to_owned();
    }
    // Both nodes read the queue once; the last in line waits.
    for node in [&a, &b] {
        let (status, waiting) = poll(&client, &node.url(""), event, &last).await;
        assert_eq!(
            (status, waiting["state"].as_str()),
            (200, Some("waiting")),
            "{waiting}"
        );
        assert_eq!(waiting["serving"], 1);
    }
    let reads = (
        a.outbound(Some("queue"), "GET").await,
        b.outbound(Some("queue"), "GET").await,
    );
    assert_eq!(reads, (1.0, 1.0));
    // The hold released: stock again, the ledger lets the line in and pushes `serving`;
    // both nodes admit the last in line without asking the ledger again.
    let hold_id = held["hold_id"].as_str().expect("id");
    let (status, _) = ledger
        .post_json(&format!("/v1/holds/{hold_id}/release"), &Value::Null, None)
        .await;
    assert_eq!(status, 200);
    for node in [&a, &b] {
        let admitted = wait_admitted(&client, &node.url(""), event, &last, ADMISSION_LIMIT).await;
        assert_eq!(admitted["serving"], 3, "{admitted}");
    }
    let reads = (
        a.outbound(Some("queue"), "GET").await,
        b.outbound(Some("queue"), "GET").await,
    );
    assert_eq!(
        reads,
        (1.0, 1.0),
        "the nodes asked the ledger instead of following the push"
    );
}

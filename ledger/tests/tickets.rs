//! Signed ticket codes: each event's key pair made at publish, codes any door verifies with
//! the public keys alone, rotation, the re-issue of codes made before signing, and the
//! private key kept out of every answer and outbox payload.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::tickets::{CheckinKey, TicketClaim, Verifier, CODE_CHARS};
use tessera_domain::{EventId, ShowId, TicketId};
use tessera_testkit::ledger::spawn_app;
use uuid::Uuid;

fn keys(value: &Value) -> Vec<CheckinKey> {
    serde_json::from_value(value.clone()).expect("checkin keys")
}

fn codes(confirm: &Value) -> Vec<(String, String)> {
    confirm["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| {
            let id = t["ticket_id"].as_str().expect("id").to_owned();
            (id, t["code"].as_str().expect("code").to_owned())
        })
        .collect()
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn confirmed_tickets_carry_codes_the_events_public_key_verifies(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, confirm) = app.sold(3).await;
    let (status, detail) = app
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await;
    assert_eq!(status, 200, "{detail}");
    let public = keys(&detail["checkin_keys"]);
    assert_eq!(public.len(), 1, "one key pair, made at publish: {detail}");
    let verifier = Verifier::new(&public);
    let event_id: EventId = fixture.event_id.parse().expect("id");
    let show_id: ShowId = fixture.show_id.parse().expect("id");
    for (ticket_id, code) in codes(&confirm) {
        assert_eq!(code.len(), CODE_CHARS);
        let claim = verifier
            .verify_code(&code)
            .expect("a code the event's key signed");
        let ticket_id = TicketId(ticket_id.parse().expect("uuid"));
        assert_eq!(
            claim,
            TicketClaim {
                ticket_id,
                event_id,
                show_id
            }
        );
    }
    // Another event's key verifies none of them.
    let (other, _) = app.sold(1).await;
    let (_, other_detail) = app
        .get_json(&format!("/v1/events/{}", other.event_id))
        .await;
    let other_keys = Verifier::new(&keys(&other_detail["checkin_keys"]));
    for (_, code) in codes(&confirm) {
        assert!(other_keys.verify_code(&code).is_err());
    }
    // The same keys at the check-in route, with an ETag.
    let path = format!("/v1/events/{}/checkin-keys", fixture.event_id);
    let response = app
        .client
        .get(app.url(&path))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    assert_eq!(keys(&body["keys"]), public);
    let again = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 304);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_rotated_key_signs_new_codes_and_old_codes_stay_valid(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, before) = app.sold(1).await;
    let event_id: EventId = fixture.event_id.parse().expect("id");
    let mut conn = pool.acquire().await.expect("connection");
    let new_key = tessera_ledger::tickets::keys::rotate(&mut conn, event_id)
        .await
        .expect("rotates");
    assert_eq!(new_key, 2);
    let hold = app
        .hold(&fixture, 1, "bob", &Uuid::new_v4().to_string())
        .await
        .1;
    let path = format!(
        "/v1/holds/{}/confirm",
        hold["hold_id"].as_str().expect("id")
    );
    let (_, after) = app
        .post_json(&path, &json!({"payment_ref": "pay-2"}), Some("confirm-2"))
        .await;
    let (_, detail) = app
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await;
    let public = keys(&detail["checkin_keys"]);
    assert_eq!(public.iter().map(|k| k.key_id).collect::<Vec<_>>(), [1, 2]);
    let both = Verifier::new(&public);
    let only_new = Verifier::new(&public[1..]);
    let (_, old_code) = &codes(&before)[0];
    let (_, new_code) = &codes(&after)[0];
    assert!(both.verify_code(old_code).is_ok(), "old codes stay valid");
    assert!(
        only_new.verify_code(new_code).is_ok(),
        "new codes use the new key"
    );
    assert!(only_new.verify_code(old_code).is_err());
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn codes_made_before_signing_are_signed_by_the_reissue_step(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, confirm) = app.sold(2).await;
    // As a ticket issued before this version: a 12-character code.
    let (ticket_id, _) = codes(&confirm)[0].clone();
    let ticket_uuid: Uuid = ticket_id.parse().expect("uuid");
    sqlx::query("update tickets set code = 'ABCDEFGHJKLM' where id = $1")
        .bind(ticket_uuid)
        .execute(&pool)
        .await
        .expect("old code");
    let reissued = tessera_ledger::tickets::keys::reissue_unsigned_codes(&pool)
        .await
        .expect("reissues");
    assert_eq!(reissued, 1, "only the unsigned code");
    let code: String = sqlx::query_scalar("select code from tickets where id = $1")
        .bind(ticket_uuid)
        .fetch_one(&pool)
        .await
        .expect("code");
    let (_, detail) = app
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await;
    let claim = Verifier::new(&keys(&detail["checkin_keys"]))
        .verify_code(&code)
        .expect("signed now");
    assert_eq!(claim.ticket_id, TicketId(ticket_uuid));
    assert_eq!(
        tessera_ledger::tickets::keys::reissue_unsigned_codes(&pool)
            .await
            .expect("reissues"),
        0,
        "nothing left to sign"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_private_key_is_in_no_answer_and_no_outbox_payload(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, confirm) = app.sold(2).await;
    let seed: Vec<u8> =
        sqlx::query_scalar("select private_key from event_keys where event_id = $1")
            .bind(fixture.event_id.parse::<Uuid>().expect("uuid"))
            .fetch_one(&pool)
            .await
            .expect("the event's key");
    let spellings = spellings(&seed);
    let admin = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/v1/events/{}", fixture.event_id),
            &Value::Null,
        )
        .await
        .text()
        .await
        .expect("admin detail");
    let public = app
        .get_json(&format!("/v1/events/{}", fixture.event_id))
        .await
        .1;
    let checkin = app
        .get_json(&format!("/v1/events/{}/checkin-keys", fixture.event_id))
        .await
        .1;
    let outbox: Vec<String> = sqlx::query_scalar("select payload::text from outbox")
        .fetch_all(&pool)
        .await
        .expect("outbox");
    let answers = [
        confirm.to_string(),
        admin,
        public.to_string(),
        checkin.to_string(),
    ];
    for text in answers.iter().chain(&outbox) {
        for secret in &spellings {
            assert!(
                !text.contains(secret.as_str()),
                "the private key leaked into {text}"
            );
        }
    }
    app.stop().await;
}

/// The ways a 32-byte secret could be written out: base64 (both alphabets), hex, `Debug`.
fn spellings(seed: &[u8]) -> [String; 4] {
    use base64::Engine as _;
    [
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(seed),
        base64::engine::general_purpose::STANDARD.encode(seed),
        seed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        format!("{seed:?}"),
    ]
}

/// What the ledger logs while a test runs: the in-process ledger's tasks share the test's
/// current-thread runtime, so a subscriber set as this thread's default sees them.
#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn the_private_key_is_in_no_log_line_at_any_level(pool: PgPool) {
    let captured = tessera_testkit::logs::LogCapture::start();
    let app = spawn_app(pool.clone()).await;
    // Publishing makes the key; confirming and issuing a gate credential read it to sign.
    let (fixture, _) = app.sold(2).await;
    let gate = app
        .admin_post(
            &format!("/admin/v1/events/{}/gates", fixture.event_id),
            &json!({"gate": "A"}),
        )
        .await;
    assert_eq!(gate.status(), 201);
    app.stop().await;
    let seed: Vec<u8> =
        sqlx::query_scalar("select private_key from event_keys where event_id = $1")
            .bind(fixture.event_id.parse::<Uuid>().expect("uuid"))
            .fetch_one(&pool)
            .await
            .expect("the event's key");
    let log = captured.text();
    assert!(
        log.contains("event_keys"),
        "the capture holds the statements that store and read the key"
    );
    for secret in spellings(&seed) {
        assert!(!log.contains(&secret), "the private key is in the log");
    }
}

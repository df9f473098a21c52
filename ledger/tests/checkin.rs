//! Check-in at the ledger (invariant 9, 10): gate credentials, exactly-once redeem, nonce
//! replays, offline uploads, and every way a scan or a credential is refused.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::tickets::{EventSigningKey, GateCredential};
use tessera_domain::{EventId, TenantId};
use tessera_testkit::ledger::{spawn_app, Fixture, TestApp};
use uuid::Uuid;

/// A published event with one zone and `quantity` of it sold: the fixture and the
/// tickets' codes.
async fn sold(app: &TestApp, quantity: i64) -> (Fixture, Vec<String>) {
    let (fixture, confirm) = app.sold(quantity).await;
    let codes = confirm["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .map(|t| t["code"].as_str().expect("code").to_owned())
        .collect();
    (fixture, codes)
}

/// A credential for `gate` of the fixture's event: its token.
async fn gate(app: &TestApp, fixture: &Fixture, gate: &str) -> (String, String) {
    let response = app
        .admin_post(
            &format!("/admin/v1/events/{}/gates", fixture.event_id),
            &json!({"gate": gate, "valid_hours": 2}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let issued: Value = response.json().await.expect("json");
    (
        issued["token"].as_str().expect("token").to_owned(),
        issued["credential_id"].as_str().expect("id").to_owned(),
    )
}

/// `POST /v1/checkin` with `token` (if any): status and body.
async fn scan(app: &TestApp, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = app.client.post(app.url("/v1/checkin")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn body(code: &str, gate: &str, nonce: &str) -> Value {
    json!({"code": code, "gate": gate, "nonce": nonce})
}

async fn ticket_status(pool: &PgPool, code: &str) -> String {
    sqlx::query_scalar("select status from tickets where code = $1")
        .bind(code)
        .fetch_one(pool)
        .await
        .expect("ticket")
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_ticket_enters_once_and_every_later_scan_says_when_and_where(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, codes) = sold(&app, 1).await;
    let (token, _) = gate(&app, &fixture, "North 1").await;
    let (status, first) = scan(&app, Some(&token), &body(&codes[0], "North 1", "n-1")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["result"], "ok");
    assert_eq!(first["gate"], "North 1");
    assert_eq!(ticket_status(&pool, &codes[0]).await, "checked_in");
    // The same scan again (a lost answer): the same verdict, not `already_redeemed`.
    assert_eq!(
        scan(&app, Some(&token), &body(&codes[0], "North 1", "n-1")).await,
        (201, first.clone())
    );
    // A new scan: refused, saying when and where it entered.
    let (status, again) = scan(&app, Some(&token), &body(&codes[0], "North 1", "n-2")).await;
    assert_eq!(
        (status, again["result"].as_str()),
        (409, Some("already_redeemed")),
        "{again}"
    );
    assert_eq!(again["checked_in_at"], first["checked_in_at"]);
    assert_eq!(again["gate"], "North 1");
    // An offline scanner's upload of an entry it let through: recorded, reported.
    let offline = json!({"code": codes[0], "gate": "North 1", "nonce": "offline-7",
                         "scanned_at": (Utc::now() - Duration::minutes(3)).to_rfc3339(), "force": true});
    let (status, late) = scan(&app, Some(&token), &offline).await;
    assert_eq!(
        (status, late["result"].as_str()),
        (409, Some("duplicate_offline")),
        "{late}"
    );
    let scans: i64 = sqlx::query_scalar("select count(*) from checkins")
        .fetch_one(&pool)
        .await
        .expect("history");
    assert_eq!(scans, 3, "every scan recorded once, the replay not again");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn two_gates_scanning_one_ticket_at_once_let_exactly_one_in(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, codes) = sold(&app, 1).await;
    let (north, _) = gate(&app, &fixture, "North").await;
    let (south, _) = gate(&app, &fixture, "South").await;
    let scans = (0..16).map(|i| {
        let (token, name) = if i % 2 == 0 {
            (&north, "North")
        } else {
            (&south, "South")
        };
        let body = body(&codes[0], name, &format!("race-{i}"));
        let app = &app;
        async move { scan(app, Some(token), &body).await }
    });
    let verdicts = futures::future::join_all(scans).await;
    let entered: Vec<&Value> = verdicts
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(entered.len(), 1, "{verdicts:?}");
    for (status, verdict) in &verdicts {
        if *status == 409 {
            assert_eq!(verdict["result"], "already_redeemed");
            assert_eq!(
                verdict["gate"], entered[0]["gate"],
                "the first entry's gate"
            );
        }
    }
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn forged_and_foreign_codes_are_refused_and_enter_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, codes) = sold(&app, 1).await;
    let (other, other_codes) = sold(&app, 1).await;
    let (token, _) = gate(&app, &fixture, "A").await;
    let mut forged = codes[0].clone().into_bytes();
    forged[60] = if forged[60] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let (status, verdict) = scan(&app, Some(&token), &body(&forged, "A", "f-1")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (409, Some("invalid")),
        "{verdict}"
    );
    let (status, verdict) = scan(&app, Some(&token), &body(&other_codes[0], "A", "f-2")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (409, Some("wrong_event")),
        "{verdict}"
    );
    let (status, verdict) = scan(&app, Some(&token), &body("not a code", "A", "f-3")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (409, Some("invalid")),
        "{verdict}"
    );
    assert_eq!(ticket_status(&pool, &codes[0]).await, "valid");
    assert_eq!(ticket_status(&pool, &other_codes[0]).await, "valid");
    let _ = other;
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn only_a_live_credential_for_the_gate_may_scan(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, codes) = sold(&app, 1).await;
    let scan_with = |token: Option<String>, gate: &'static str| {
        let body = body(&codes[0], gate, &Uuid::new_v4().to_string());
        let app = &app;
        async move { scan(app, token.as_deref(), &body).await }
    };
    let code_of = |answer: &(u16, Value)| (answer.0, answer.1["code"].as_str().map(str::to_owned));
    let unauthorized = (401, Some("unauthorized".to_owned()));
    // None at all, an admin token, a changed byte.
    assert_eq!(code_of(&scan_with(None, "A").await), unauthorized);
    assert_eq!(
        code_of(&scan_with(Some(app.token.clone()), "A").await),
        unauthorized
    );
    let (token, credential_id) = gate(&app, &fixture, "A").await;
    let mut bent = token.clone().into_bytes();
    let last = bent.len() - 2;
    bent[last] = if bent[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        code_of(&scan_with(Some(String::from_utf8(bent).expect("ascii")), "A").await),
        unauthorized
    );
    // Another gate's name with this gate's credential.
    assert_eq!(
        code_of(&scan_with(Some(token.clone()), "B").await),
        (403, Some("forbidden".to_owned()))
    );
    // Expired: signed by the event's key, but its time is up.
    let event_id: EventId = fixture.event_id.parse().expect("id");
    let (key_id, seed): (i32, Vec<u8>) =
        sqlx::query_as("select key_id, private_key from event_keys where event_id = $1")
            .bind(event_id.as_uuid())
            .fetch_one(&pool)
            .await
            .expect("key");
    let tenant: Uuid = sqlx::query_scalar("select tenant_id from events where id = $1")
        .bind(event_id.as_uuid())
        .fetch_one(&pool)
        .await
        .expect("tenant");
    let expired_id = Uuid::now_v7();
    let expired_at = chrono::DateTime::from_timestamp(Utc::now().timestamp() - 60, 0).expect("t");
    sqlx::query(
        "insert into gate_credentials (id, event_id, gate, expires_at) values ($1, $2, 'A', $3)",
    )
    .bind(expired_id)
    .bind(event_id.as_uuid())
    .bind(expired_at)
    .execute(&pool)
    .await
    .expect("row");
    let signer = EventSigningKey::from_seed(
        u16::try_from(key_id).expect("u16"),
        &seed.try_into().expect("32 bytes"),
    );
    let expired = signer
        .sign_credential(&GateCredential {
            credential_id: expired_id,
            tenant_id: TenantId(tenant),
            event_id,
            expires_at: expired_at,
            gate: "A".into(),
        })
        .expect("signed");
    assert_eq!(code_of(&scan_with(Some(expired), "A").await), unauthorized);
    // Revoked: it worked, then it does not.
    assert_eq!(scan_with(Some(token.clone()), "A").await.0, 201);
    let revoke = app
        .admin_post(
            &format!(
                "/admin/v1/events/{}/gates/{credential_id}/revoke",
                fixture.event_id
            ),
            &Value::Null,
        )
        .await;
    assert_eq!(revoke.status(), 200);
    assert_eq!(code_of(&scan_with(Some(token), "A").await), unauthorized);
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn bad_scans_and_bad_gates_are_problems_naming_their_fields(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, codes) = sold(&app, 1).await;
    let (token, _) = gate(&app, &fixture, "A").await;
    let (status, problem) = scan(
        &app,
        Some(&token),
        &json!({"code": codes[0], "gate": "A", "nonce": "has space", "force": true}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["nonce", "scanned_at"]);
    let response = app
        .admin_post(
            &format!("/admin/v1/events/{}/gates", fixture.event_id),
            &json!({"gate": "", "valid_hours": 0}),
        )
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(ticket_status(&pool, &codes[0]).await, "valid");
    app.stop().await;
}

#[sqlx::test(migrator = "tessera_ledger::MIGRATOR")]
async fn a_door_of_one_show_refuses_a_ticket_of_another(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let (fixture, codes) = sold(&app, 1).await;
    let (token, _) = gate(&app, &fixture, "A").await;
    let other_show = Uuid::new_v4().to_string();
    let at = |show: &str, nonce: &str| {
        let mut scan = body(&codes[0], "A", nonce);
        scan["show_id"] = json!(show);
        scan
    };
    let (status, verdict) = scan(&app, Some(&token), &at(&other_show, "s-1")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (409, Some("wrong_show")),
        "{verdict}"
    );
    assert!(verdict["ticket_id"].is_string());
    assert_eq!(
        ticket_status(&pool, &codes[0]).await,
        "valid",
        "nothing entered"
    );
    let recorded: String = sqlx::query_scalar("select result from checkins where nonce = 's-1'")
        .fetch_one(&pool)
        .await
        .expect("the scan is kept");
    assert_eq!(recorded, "wrong_show");
    // The ticket's own show's door lets it in.
    let (status, verdict) = scan(&app, Some(&token), &at(&fixture.show_id, "s-2")).await;
    assert_eq!(
        (status, verdict["result"].as_str()),
        (201, Some("ok")),
        "{verdict}"
    );
    let (status, _) = scan(&app, Some(&token), &at("not-a-show", "s-3")).await;
    assert_eq!(status, 422);
    app.stop().await;
}

//! `POST /v1/checkin`: a door's scan, redeemed exactly once (invariant 9). The gate
//! credential is checked before the body is read ([`Gate`]): signed with the event's key,
//! unexpired, unrevoked, its tenant the event's. Then the code: signed by the event's keys
//! (`invalid` if not; `wrong_event` if another event's keys signed it), and the ticket goes
//! `valid → checked_in` in one conditional update. A scan's nonce (per credential) replays
//! its first verdict; every scan is recorded in `checkins`.

use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tessera_domain::checkin::{CheckinRequest, Scan, ScanResult, Verdict};
use tessera_domain::tickets::{
    code_event, credential_event, GateCredential, TicketStatus, Verifier,
};
use tessera_domain::{ErrorCode, EventId, TicketId};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::openapi::problems;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/checkin", post(checkin))
}

/// A verified, live gate credential and the keys of its event.
pub struct Gate {
    credential: GateCredential,
    verifier: Verifier,
}

impl FromRequestParts<AppState> for Gate {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |detail: &str| ApiError::client(ErrorCode::Unauthorized, detail);
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("send the gate's credential: Authorization: Bearer <token>")
            })?;
        let forged = || unauthorized("not a gate credential the ledger signed");
        let event_id = credential_event(token).ok_or_else(forged)?;
        let mut conn = state.pool.acquire().await?;
        let verifier = Verifier::new(&super::keys::public_keys(&mut conn, event_id).await?);
        let credential = verifier.verify_credential(token).map_err(|_| forged())?;
        let row: Option<(Option<DateTime<Utc>>, Uuid, DateTime<Utc>)> = sqlx::query_as(
            "select g.revoked_at, e.tenant_id, now() from gate_credentials g
             join events e on e.id = g.event_id where g.id = $1 and g.event_id = $2",
        )
        .bind(credential.credential_id)
        .bind(event_id.as_uuid())
        .fetch_optional(&mut *conn)
        .await?;
        let (revoked_at, tenant, now) = row.ok_or_else(forged)?;
        if revoked_at.is_some() {
            return Err(unauthorized("this gate credential was revoked"));
        }
        if credential.expires_at <= now {
            return Err(unauthorized("this gate credential expired"));
        }
        if tenant != credential.tenant_id.0 {
            return Err(ApiError::client(
                ErrorCode::Forbidden,
                "this credential's organizer does not own the event",
            ));
        }
        Ok(Self {
            credential,
            verifier,
        })
    }
}

/// Redeems a ticket at a gate.
#[utoipa::path(post, path = "/v1/checkin", tag = "checkin",
    request_body = CheckinRequest, security(("gate" = [])),
    responses(
        (status = 201, body = Verdict, description = "ok: let them in"),
        (status = 409, body = Verdict, description = "already_redeemed, duplicate_offline, void, wrong_event or invalid: the verdict says which"),
        problems::JsonBody, problems::Unauthorized, problems::Forbidden, problems::Unavailable))]
pub(crate) async fn checkin(
    State(state): State<AppState>,
    gate: Gate,
    JsonBody(request): JsonBody<CheckinRequest>,
) -> ApiResult<Response> {
    let scan = request.parse(Utc::now()).map_err(ApiError::Validation)?;
    if scan.gate != gate.credential.gate {
        return Err(ApiError::client(
            ErrorCode::Forbidden,
            format!("this credential is for gate {:?}", gate.credential.gate),
        ));
    }
    let mut tx = state.pool.begin().await?;
    // One scan (credential, nonce) at a time: a retry racing its original waits, then
    // replays the original's verdict.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("{}/{}", gate.credential.credential_id, scan.nonce))
        .execute(&mut *tx)
        .await?;
    let verdict = match replay(&mut tx, gate.credential.credential_id, &scan.nonce).await? {
        Some(verdict) => verdict,
        None => {
            let verdict = judge(&mut tx, &gate, &scan).await?;
            record(&mut tx, &gate, &scan, &verdict).await?;
            verdict
        }
    };
    tx.commit().await?;
    let status = StatusCode::from_u16(verdict.result.status()).map_err(anyhow::Error::new)?;
    Ok((status, Json(verdict)).into_response())
}

/// The verdict a scan with this nonce got before, if any.
async fn replay(
    conn: &mut PgConnection,
    credential: Uuid,
    nonce: &str,
) -> ApiResult<Option<Verdict>> {
    let stored: Option<sqlx::types::Json<Verdict>> =
        sqlx::query_scalar("select verdict from checkins where credential_id = $1 and nonce = $2")
            .bind(credential)
            .bind(nonce)
            .fetch_optional(conn)
            .await?;
    Ok(stored.map(|v| v.0))
}

/// The code's verdict, the ticket checked in if it may enter.
async fn judge(conn: &mut PgConnection, gate: &Gate, scan: &Scan) -> ApiResult<Verdict> {
    let event_id = gate.credential.event_id;
    let Ok(claim) = gate.verifier.verify_code(&scan.code) else {
        return Ok(Verdict::refused(
            other_event(conn, event_id, &scan.code).await?,
        ));
    };
    if claim.event_id != event_id {
        // Signed with this event's key but naming another event: not one the ledger made.
        return Ok(Verdict::refused(ScanResult::Invalid));
    }
    if scan.wrong_show(claim.show_id) {
        return Ok(Verdict {
            ticket_id: Some(claim.ticket_id),
            ..Verdict::refused(ScanResult::WrongShow)
        });
    }
    redeem(conn, claim.ticket_id, scan).await
}

/// `wrong_event` if another event's keys signed `code`, else `invalid` (read on the scan's
/// own connection: no second one taken from the pool while its transaction holds one).
async fn other_event(conn: &mut PgConnection, door: EventId, code: &str) -> ApiResult<ScanResult> {
    let Some(named) = code_event(code).filter(|e| *e != door) else {
        return Ok(ScanResult::Invalid);
    };
    let keys = super::keys::public_keys(conn, named).await?;
    Ok(match Verifier::new(&keys).verify_code(code) {
        Ok(claim) if claim.event_id == named => ScanResult::WrongEvent,
        _ => ScanResult::Invalid,
    })
}

/// A ticket as a scan that did not enter it reads it.
#[derive(sqlx::FromRow)]
struct TicketEntry {
    status: TicketStatus,
    seat_index: Option<i32>,
    checked_in_at: Option<DateTime<Utc>>,
    checked_in_gate: Option<String>,
}

/// `valid → checked_in` in one conditional update; otherwise what the ticket is.
async fn redeem(conn: &mut PgConnection, ticket_id: TicketId, scan: &Scan) -> ApiResult<Verdict> {
    // The entry time as stored (PostgreSQL keeps microseconds): what later scans report.
    let entered: Option<(Option<i32>, DateTime<Utc>)> = sqlx::query_as(
        "update tickets set status = 'checked_in', checked_in_at = $2, checked_in_gate = $3
         where id = $1 and status = 'valid' returning seat_index, checked_in_at",
    )
    .bind(ticket_id.as_uuid())
    .bind(scan.scanned_at)
    .bind(&scan.gate)
    .fetch_optional(&mut *conn)
    .await?;
    let verdict = |result, seat_index, at, gate| Verdict {
        result,
        ticket_id: Some(ticket_id),
        seat_index,
        checked_in_at: at,
        gate,
        served_by: None,
    };
    if let Some((seat_index, at)) = entered {
        crate::webhooks::emit::ticket_checked_in(conn, ticket_id.as_uuid(), scan.offline_entry)
            .await?;
        return Ok(verdict(
            ScanResult::Ok,
            seat_index,
            Some(at),
            Some(scan.gate.clone()),
        ));
    }
    let ticket: Option<TicketEntry> = sqlx::query_as(
        "select status, seat_index, checked_in_at, checked_in_gate from tickets where id = $1",
    )
    .bind(ticket_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(ticket) = ticket else {
        // A code the event's key signed for a ticket that does not exist: never issued.
        return Ok(Verdict::refused(ScanResult::Invalid));
    };
    let result = match ticket.status {
        TicketStatus::Void => ScanResult::Void,
        TicketStatus::CheckedIn if scan.offline_entry => ScanResult::DuplicateOffline,
        TicketStatus::CheckedIn => ScanResult::AlreadyRedeemed,
        // Valid, yet the conditional update above found it not valid: it changed between
        // the two statements, which the row lock of the update rules out.
        TicketStatus::Valid => {
            return Err(anyhow::anyhow!("ticket {ticket_id} valid after a failed redeem").into())
        }
    };
    Ok(verdict(
        result,
        ticket.seat_index,
        ticket.checked_in_at,
        ticket.checked_in_gate,
    ))
}

/// Every scan into the history, with its verdict (what a retry with its nonce replays).
async fn record(
    conn: &mut PgConnection,
    gate: &Gate,
    scan: &Scan,
    verdict: &Verdict,
) -> ApiResult<()> {
    let result = serde_json::to_value(verdict.result).map_err(anyhow::Error::new)?;
    sqlx::query(
        "insert into checkins (credential_id, nonce, ticket_id, gate, scanned_at, result, verdict)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(gate.credential.credential_id)
    .bind(&scan.nonce)
    .bind(verdict.ticket_id.map(|t| t.0))
    .bind(&scan.gate)
    .bind(scan.scanned_at)
    .bind(result.as_str().unwrap_or_default())
    .bind(sqlx::types::Json(verdict))
    .execute(conn)
    .await?;
    Ok(())
}

//! Idempotent requests (invariant 3). The result of a request that carried an
//! `Idempotency-Key` is stored in the same transaction as its effect; a retry with the
//! same key and body replays it, a retry with another body is rejected with 422.
//!
//! Transient failures (500, 503) are never stored, so the client's retry runs afresh.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tessera_domain::problem::PROBLEM_CONTENT_TYPE;
use tessera_domain::{ErrorCode, IdempotencyKey, Problem};

use crate::error::insert_problem_headers;

/// The response header marking a replayed result.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// SHA-256 of the canonical JSON of the parsed request: equal requests hash equal whatever
/// the client's whitespace or key order.
pub fn request_sha256(request: &impl Serialize) -> Vec<u8> {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Sha256::digest(&canonical).to_vec()
}

/// A result as stored and replayed: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub replayed: bool,
}

impl Reply {
    pub fn ok(status: StatusCode, body: &impl Serialize) -> Self {
        Self {
            status: status.as_u16(),
            body: serde_json::to_value(body).unwrap_or_default(),
            replayed: false,
        }
    }

    pub fn problem(problem: &Problem) -> Self {
        Self {
            status: problem.status,
            body: serde_json::to_value(problem).unwrap_or_default(),
            replayed: false,
        }
    }

    pub fn conflict() -> Self {
        Self::problem(
            &Problem::new(ErrorCode::IdempotencyConflict)
                .with_detail("this Idempotency-Key was already used with a different request body"),
        )
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = (!status.is_success())
            .then(|| serde_json::from_value::<ErrorCode>(self.body.get("code")?.clone()).ok())
            .flatten();
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        match code {
            // A problem: the same headers as every other problem rendering.
            Some(code) => insert_problem_headers(headers, &Problem::new(code)),
            None if status.is_success() => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            None => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
                );
            }
        }
        if self.replayed {
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// A stored result found for a key.
#[derive(Debug, sqlx::FromRow)]
pub struct Stored {
    pub scope: String,
    pub key: String,
    pub request_sha256: Vec<u8>,
    pub response_status: StoredStatus,
    pub response_body: serde_json::Value,
}

/// The lowest and highest status a stored result may carry: a final HTTP status (the
/// migration `idempotency_response_status_final` checks the same range on write).
const STORED_STATUS_RANGE: std::ops::RangeInclusive<u16> = 200..=599;

/// A stored result's status, decoded once from its `smallint`: a value outside
/// [`STORED_STATUS_RANGE`] is a decode error (the request fails 500, logged), never replayed
/// as some other status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredStatus(u16);

impl StoredStatus {
    pub fn as_u16(self) -> u16 {
        self.0
    }
}

impl sqlx::Type<sqlx::Postgres> for StoredStatus {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <i16 as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for StoredStatus {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let raw = <i16 as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
        u16::try_from(raw)
            .ok()
            .filter(|status| STORED_STATUS_RANGE.contains(status))
            .map(Self)
            .ok_or_else(|| {
                format!("stored response_status {raw} is not a final HTTP status").into()
            })
    }
}

impl Stored {
    /// The replay if the request matches, else the 422 conflict.
    pub fn replay_for(&self, request_sha256: &[u8]) -> Reply {
        if self.request_sha256 != request_sha256 {
            return Reply::conflict();
        }
        Reply {
            status: self.response_status.as_u16(),
            body: self.response_body.clone(),
            replayed: true,
        }
    }
}

/// Stored results for any of `keys` in `scope`.
///
/// Not a prepared statement (`persistent(false)`): PostgreSQL would cache a generic plan
/// for `key = any($2)` made while the table was still empty — a sequential scan that stays
/// in use as the table grows (measured: hold batches 5x slower within seconds). An
/// unnamed statement is planned for its actual size every time.
pub async fn lookup(
    conn: &mut PgConnection,
    scope: &str,
    keys: &[&str],
) -> Result<Vec<Stored>, sqlx::Error> {
    sqlx::query_as(
        "select scope, key, request_sha256, response_status, response_body from idempotency
         where scope = $1 and key = any($2)",
    )
    .bind(scope)
    .bind(keys)
    .persistent(false)
    .fetch_all(conn)
    .await
}

/// Stored results for any of the pairs `(scopes[i], keys[i])`: each request of a batch
/// whose scope names its own resource (a confirm's hold). Planned per call, as [`lookup`].
pub async fn lookup_pairs(
    conn: &mut PgConnection,
    scopes: &[&str],
    keys: &[&str],
) -> Result<Vec<Stored>, sqlx::Error> {
    sqlx::query_as(
        "select i.scope, i.key, i.request_sha256, i.response_status, i.response_body
         from unnest($1::text[], $2::text[]) as p(scope, key)
              join idempotency i on i.scope = p.scope and i.key = p.key",
    )
    .bind(scopes)
    .bind(keys)
    .persistent(false)
    .fetch_all(conn)
    .await
}

/// One result to store.
pub struct NewRecord<'a> {
    pub scope: &'a str,
    pub key: &'a IdempotencyKey,
    pub request_sha256: &'a [u8],
    pub reply: &'a Reply,
}

/// Stores results; returns how many were new. Fewer than given means another transaction
/// stored the same key concurrently: the caller must roll back and retry (the retry then
/// replays that result).
pub async fn store(
    conn: &mut PgConnection,
    records: &[NewRecord<'_>],
) -> Result<usize, sqlx::Error> {
    if records.is_empty() {
        return Ok(0);
    }
    let scopes: Vec<&str> = records.iter().map(|r| r.scope).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let hashes: Vec<&[u8]> = records.iter().map(|r| r.request_sha256).collect();
    let statuses: Vec<i16> = records.iter().map(|r| r.reply.status as i16).collect();
    let bodies: Vec<sqlx::types::Json<&serde_json::Value>> = records
        .iter()
        .map(|r| sqlx::types::Json(&r.reply.body))
        .collect();
    let inserted = sqlx::query(
        "insert into idempotency (scope, key, request_sha256, response_status, response_body)
         select c, k, h, s, b
         from unnest($1::text[], $2::text[], $3::bytea[], $4::int2[], $5::jsonb[]) as t(c, k, h, s, b)
         on conflict do nothing",
    )
    .bind(&scopes)
    .bind(&keys)
    .bind(&hashes)
    .bind(&statuses)
    .bind(&bodies)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() as usize)
}

/// Rows deleted per prune statement (keeps each delete short) and statements per call
/// (bounds one call; a flash sale's refusals drain over a few calls).
const PRUNE_BATCH_MAX: i64 = 10_000;
const PRUNE_BATCHES_PER_CALL_MAX: usize = 100;

/// Deletes results older than `retention`; returns how many.
pub async fn prune(
    pool: &sqlx::PgPool,
    retention: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    for _ in 0..PRUNE_BATCHES_PER_CALL_MAX {
        let done = sqlx::query(
            "delete from idempotency where ctid in (
                 select ctid from idempotency where created_at < now() - make_interval(secs => $1) limit $2)",
        )
        .bind(retention.as_secs_f64())
        .bind(PRUNE_BATCH_MAX)
        .execute(pool)
        .await?;
        deleted += done.rows_affected();
        if done.rows_affected() < PRUNE_BATCH_MAX as u64 {
            break;
        }
    }
    Ok(deleted)
}

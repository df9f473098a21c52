//! Each event's Ed25519 keys (`event_keys`): made when the event is published (or at its
//! first confirm, for an event published before keys existed), the newest unrevoked one
//! signing new codes. The private half is read here, only to sign; it goes into no answer,
//! log line or outbox payload ([`EventSigningKey`] has no `Debug`).

use sqlx::{PgConnection, PgPool};
use tessera_domain::tickets::{CheckinKey, EventSigningKey, KeyId, TicketClaim, CODE_CHARS};
use tessera_domain::{EventId, ShowId, TicketId};
use uuid::Uuid;

use crate::error::ApiResult;

/// The first key an event gets.
const FIRST_KEY_ID: KeyId = 1;
/// Codes signed again per statement by [`reissue_unsigned_codes`].
const REISSUE_BATCH: i64 = 1_000;

/// Gives `event_id` its first key pair unless it has one (idempotent; concurrent callers
/// agree on the one that was stored).
pub async fn ensure_key(conn: &mut PgConnection, event_id: EventId) -> ApiResult<()> {
    let key = EventSigningKey::from_seed(FIRST_KEY_ID, &rand::random::<[u8; 32]>());
    insert(conn, event_id, &key, true).await
}

/// Adds a newer key pair: new codes are signed with it, codes signed before stay valid
/// until their key is revoked. Returns the new key's id.
pub async fn rotate(conn: &mut PgConnection, event_id: EventId) -> ApiResult<KeyId> {
    let newest: Option<i32> =
        sqlx::query_scalar("select max(key_id) from event_keys where event_id = $1")
            .bind(event_id.as_uuid())
            .fetch_one(&mut *conn)
            .await?;
    let key_id = KeyId::try_from(newest.unwrap_or(0) + 1)
        .map_err(|_| anyhow::anyhow!("event {event_id} has used every key id"))?;
    let key = EventSigningKey::from_seed(key_id, &rand::random::<[u8; 32]>());
    insert(conn, event_id, &key, false).await?;
    Ok(key_id)
}

async fn insert(
    conn: &mut PgConnection,
    event_id: EventId,
    key: &EventSigningKey,
    if_none: bool,
) -> ApiResult<()> {
    let public = key.public();
    let public_key = base64_decode(&public.public_key)?;
    let guard = if if_none {
        "where not exists (select 1 from event_keys where event_id = $1)"
    } else {
        ""
    };
    sqlx::query(&format!(
        "insert into event_keys (event_id, key_id, public_key, private_key)
         select $1, $2, $3, $4 {guard} on conflict do nothing"
    ))
    .bind(event_id.as_uuid())
    .bind(i32::from(key.key_id))
    .bind(public_key)
    .bind(key.seed().as_slice())
    .execute(conn)
    .await?;
    Ok(())
}

/// The key new codes of `event_id` are signed with: its newest unrevoked key (made now if
/// the event has none).
pub async fn signer(conn: &mut PgConnection, event_id: EventId) -> ApiResult<EventSigningKey> {
    ensure_key(conn, event_id).await?;
    let (key_id, seed): (i32, Vec<u8>) = sqlx::query_as(
        "select key_id, private_key from event_keys
         where event_id = $1 and revoked_at is null order by key_id desc limit 1",
    )
    .bind(event_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| anyhow::anyhow!("event {event_id} has no unrevoked key"))?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| anyhow::anyhow!("event {event_id}: a stored key is not 32 bytes"))?;
    let key_id = KeyId::try_from(key_id)
        .map_err(|_| anyhow::anyhow!("event {event_id}: key id {key_id} past u16"))?;
    Ok(EventSigningKey::from_seed(key_id, &seed))
}

/// The event's unrevoked public keys, oldest first (what verifiers trust). A stored key
/// id past u16 (the CHECK forbids it) is a decode error.
pub async fn public_keys(
    conn: &mut PgConnection,
    event_id: EventId,
) -> Result<Vec<CheckinKey>, sqlx::Error> {
    let rows: Vec<(i32, Vec<u8>)> = sqlx::query_as(
        "select key_id, public_key from event_keys
         where event_id = $1 and revoked_at is null order by key_id",
    )
    .bind(event_id.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(key_id, public_key)| {
            let key_id = KeyId::try_from(key_id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(CheckinKey::from_bytes(key_id, &public_key))
        })
        .collect()
}

/// Signed codes for tickets `ids` of `show_id` of `event_id`.
pub fn sign_codes(
    key: &EventSigningKey,
    event_id: EventId,
    show_id: ShowId,
    ids: &[Uuid],
) -> Vec<String> {
    ids.iter()
        .map(|&id| {
            key.sign_code(&TicketClaim {
                ticket_id: TicketId(id),
                event_id,
                show_id,
            })
        })
        .collect()
}

/// The re-issue step: tickets whose code predates signing (12 characters) get a signed
/// code, a batch at a time. Run after migrating (`migrate`, `serve`); returns how many.
pub async fn reissue_unsigned_codes(pool: &PgPool) -> anyhow::Result<u64> {
    let mut reissued = 0;
    loop {
        let mut tx = pool.begin().await?;
        // The length spelled as the partial index's predicate (a parameter would not match
        // it): migration `20261128000006`.
        let tickets: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(&format!(
            "select t.id, h.event_id, h.show_id from tickets t join holds h on h.id = t.hold_id
             where length(t.code) <> {CODE_CHARS} order by h.event_id limit $1
             for update of t skip locked"
        ))
        .bind(REISSUE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if tickets.is_empty() {
            return Ok(reissued);
        }
        for chunk in tickets.chunk_by(|a, b| a.1 == b.1) {
            let event_id = EventId(chunk[0].1);
            let key = signer(&mut tx, event_id)
                .await
                .map_err(anyhow::Error::from)?;
            let ids: Vec<Uuid> = chunk.iter().map(|t| t.0).collect();
            let codes: Vec<String> = chunk
                .iter()
                .map(|&(id, _, show)| {
                    key.sign_code(&TicketClaim {
                        ticket_id: TicketId(id),
                        event_id,
                        show_id: ShowId(show),
                    })
                })
                .collect();
            sqlx::query(
                "update tickets t set code = c.code
                 from unnest($1::uuid[], $2::text[]) as c(id, code) where t.id = c.id",
            )
            .bind(&ids)
            .bind(&codes)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
            reissued += ids.len() as u64;
        }
        tx.commit().await?;
    }
}

fn base64_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text)?)
}

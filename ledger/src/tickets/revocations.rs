//! Revoked codes: the tickets an event voided, announced to the doors. Every void (an order
//! cancelled, an event cancelled) calls [`announce`] in its own transaction, last: the
//! event's revocation count (`ticket_revocations.version`) grows by the tickets voided and
//! a `revocation` message carries the new count and their ids, so an edge adds them to its
//! cached set in place (or refetches it, past the message's bound). The ledger itself never
//! trusts the edges' sets: it refuses a void ticket at the door from its row.

use sqlx::PgConnection;
use tessera_domain::invalidation::Change;
use tessera_domain::tickets::CheckinKeys;
use tessera_domain::{EventId, TicketId};
use uuid::Uuid;

use crate::outbox;

/// What was voided, for the message.
pub enum Voided<'a> {
    /// These tickets (an order's): listed in the message if it is not too long.
    Tickets(&'a [TicketId]),
    /// `count` tickets of a cancelled event: edges refetch the set, which says `cancelled`
    /// (the event's catalog message evicted it already; this covers a lost eviction).
    WholeEvent { count: usize },
}

/// Bumps `event_id`'s revocation count by what was voided and enqueues the message, in the
/// caller's transaction (after its hold, zone and seat rows).
pub async fn announce(
    conn: &mut PgConnection,
    event_id: EventId,
    voided: Voided<'_>,
) -> Result<(), sqlx::Error> {
    let (count, listed) = match voided {
        Voided::Tickets(ids) => (ids.len(), Some(ids)),
        Voided::WholeEvent { count } => (count, None),
    };
    if count == 0 {
        return Ok(());
    }
    let version: i64 = sqlx::query_scalar(
        "insert into ticket_revocations (event_id, version) values ($1, $2)
         on conflict (event_id) do update set version = ticket_revocations.version + $2
         returning version",
    )
    .bind(event_id.as_uuid())
    .bind(i64::try_from(count).unwrap_or(i64::MAX))
    .fetch_one(&mut *conn)
    .await?;
    outbox::enqueue(conn, &Change::revocation(event_id, version, listed)).await
}

/// The revocation part of `GET /v1/events/{id}/checkin-keys`: for a cancelled event only
/// the flag (every code is refused), else its voided tickets in ascending order.
pub async fn fill(conn: &mut PgConnection, document: &mut CheckinKeys) -> Result<(), sqlx::Error> {
    let event_id = document.event_id.as_uuid();
    let (cancelled, version): (bool, Option<i64>) = sqlx::query_as(
        "select e.status = 'cancelled', r.version
         from events e left join ticket_revocations r on r.event_id = e.id where e.id = $1",
    )
    .bind(event_id)
    .fetch_one(&mut *conn)
    .await?;
    document.cancelled = cancelled;
    document.revocation_version = version.unwrap_or(0);
    document.revoked = if cancelled {
        Vec::new()
    } else {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "select t.id from holds h join tickets t on t.hold_id = h.id
             where h.event_id = $1 and h.status = 'cancelled' and t.status = 'void'
             order by t.id",
        )
        .bind(event_id)
        .fetch_all(&mut *conn)
        .await?;
        ids.into_iter().map(TicketId).collect()
    };
    Ok(())
}

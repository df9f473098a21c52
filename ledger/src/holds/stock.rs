//! Moving tickets between a zone's counters. Every mover (batch commit, confirm, release,
//! expiry) goes through [`move_stock`], so each direction is written once; the zone's
//! CHECK constraints refuse any move that would break conservation or go negative.

use sqlx::PgConnection;
use tessera_domain::invalidation::Change;
use tessera_domain::{ShowId, ZoneId};
use uuid::Uuid;

/// Where `quantity` tickets go.
#[derive(Debug, Clone, Copy)]
pub enum Movement {
    /// available → held (a hold is granted).
    Hold,
    /// held → sold (a hold is confirmed).
    Confirm,
    /// held → available (a hold is released or expires).
    Release,
}

/// A zone's counters right after a move.
#[derive(sqlx::FromRow)]
pub struct Counters {
    pub show_id: Uuid,
    pub available: i32,
    pub held: i32,
    pub sold: i32,
    pub version: i64,
}

impl Counters {
    /// The outbox message announcing these counters.
    pub fn change(&self, zone_id: ZoneId) -> Change {
        Change::Availability {
            show_id: ShowId(self.show_id),
            zone_id,
            available: self.available,
            held: self.held,
            sold: self.sold,
            version: self.version,
        }
    }
}

/// Moves `quantity` tickets of `zone_id` and bumps its version, in the caller's transaction.
pub async fn move_stock(
    conn: &mut PgConnection,
    zone_id: ZoneId,
    quantity: i32,
    movement: Movement,
) -> Result<Counters, sqlx::Error> {
    let set = match movement {
        Movement::Hold => "available = available - $2, held = held + $2",
        Movement::Confirm => "held = held - $2, sold = sold + $2",
        Movement::Release => "held = held - $2, available = available + $2",
    };
    sqlx::query_as(&format!(
        "update zones set {set}, version = version + 1
         where id = $1 returning show_id, available, held, sold, version"
    ))
    .bind(zone_id.as_uuid())
    .bind(quantity)
    .fetch_one(conn)
    .await
}

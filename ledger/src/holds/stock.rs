//! Moving tickets between a zone's counters. Every mover (batch commit, confirm, release,
//! expiry, cancellation) moves them with [`Movement::assignments`], so each direction is written once;
//! the zone's CHECK constraints refuse any move that would break conservation or go
//! negative.

use sqlx::PgConnection;
use tessera_domain::invalidation::{Change, ZoneCounters};
use tessera_domain::seats::SeatStatus;
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
    /// sold → available (a confirmed order is cancelled: its tickets void).
    Return,
}

impl Movement {
    /// The `set` list of `update zones` moving `$2` tickets this way.
    pub const fn assignments(self) -> &'static str {
        match self {
            Self::Hold => "available = available - $2, held = held + $2, version = version + 1",
            Self::Confirm => "held = held - $2, sold = sold + $2, version = version + 1",
            Self::Release => "held = held - $2, available = available + $2, version = version + 1",
            Self::Return => "sold = sold - $2, available = available + $2, version = version + 1",
        }
    }

    /// What `before` becomes when `quantity` tickets move this way: what the update must
    /// return. `None` if a counter would leave `i32` (the CHECKs refuse far earlier).
    pub fn apply(self, before: &Counters, quantity: i32) -> Option<Counters> {
        let (available, held, sold) = match self {
            Self::Hold => (
                before.available.checked_sub(quantity)?,
                before.held.checked_add(quantity)?,
                before.sold,
            ),
            Self::Confirm => (
                before.available,
                before.held.checked_sub(quantity)?,
                before.sold.checked_add(quantity)?,
            ),
            Self::Release => (
                before.available.checked_add(quantity)?,
                before.held.checked_sub(quantity)?,
                before.sold,
            ),
            Self::Return => (
                before.available.checked_add(quantity)?,
                before.held,
                before.sold.checked_sub(quantity)?,
            ),
        };
        Some(Counters {
            show_id: before.show_id,
            available,
            held,
            sold,
            version: before.version.checked_add(1)?,
        })
    }
}

/// A zone's counters (right after a move, or as read under its row lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Counters {
    pub show_id: Uuid,
    pub available: i32,
    pub held: i32,
    pub sold: i32,
    pub version: i64,
}

impl Counters {
    /// These counters as a message names them.
    pub fn of_zone(&self, zone_id: ZoneId) -> ZoneCounters {
        ZoneCounters {
            show_id: ShowId(self.show_id),
            zone_id,
            available: self.available,
            held: self.held,
            sold: self.sold,
            version: self.version,
        }
    }

    /// The outbox message announcing these counters.
    pub fn change(&self, zone_id: ZoneId) -> Change {
        Change::availability(self.of_zone(zone_id))
    }

    /// The message announcing these counters and, for a seat hold, its seats now in
    /// `state` (a `seats` message); a general-admission move has no seats.
    pub fn change_with_seats(&self, zone_id: ZoneId, seats: &[i32], state: SeatStatus) -> Change {
        if seats.is_empty() {
            return self.change(zone_id);
        }
        Change::seats(self.of_zone(zone_id), seats, state)
    }
}

/// Moves `quantity` tickets of `zone_id` and bumps its version, in the caller's transaction.
pub async fn move_stock(
    conn: &mut PgConnection,
    zone_id: ZoneId,
    quantity: i32,
    movement: Movement,
) -> Result<Counters, sqlx::Error> {
    sqlx::query_as(&format!(
        "update zones set {} where id = $1 returning show_id, available, held, sold, version",
        movement.assignments()
    ))
    .bind(zone_id.as_uuid())
    .bind(quantity)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_movement_conserves_the_total_and_bumps_the_version() {
        let before = Counters {
            show_id: Uuid::nil(),
            available: 10,
            held: 5,
            sold: 3,
            version: 7,
        };
        for movement in [
            Movement::Hold,
            Movement::Confirm,
            Movement::Release,
            Movement::Return,
        ] {
            let after = movement.apply(&before, 2).expect("in range");
            assert_eq!(
                after.available + after.held + after.sold,
                18,
                "{movement:?}"
            );
            assert_eq!(after.version, 8, "{movement:?}");
        }
        let held = Movement::Hold.apply(&before, 2).expect("in range");
        assert_eq!((held.available, held.held, held.sold), (8, 7, 3));
        let returned = Movement::Return.apply(&before, 2).expect("in range");
        assert_eq!(
            (returned.available, returned.held, returned.sold),
            (12, 5, 1)
        );
        assert_eq!(Movement::Hold.apply(&before, i32::MAX), None);
    }
}

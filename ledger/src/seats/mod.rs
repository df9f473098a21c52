//! Assigned seating at the ledger: a zone's seats stored with it ([`insert_layout`]), the
//! public seat map ([`map`]), and what the holds engine needs: the seats a batch decides on
//! ([`load_board`], [`board`]), and a hold's seats sold ([`sell_held`]) or freed
//! ([`free_held`]) when it ends. The layout rules and the status map's form live in
//! `tessera_domain::seats`, shared with the edge.

pub mod board;
pub mod map;

use axum::Router;
use sqlx::PgConnection;
use tessera_domain::holds::{NewHold, SeatPick};
use tessera_domain::seats::{Seat, SeatStatus};
use uuid::Uuid;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    map::router()
}

/// Writes a new zone's seats, `seats[i]` at index `i`, all `available`: one statement
/// from columns (a 100,000-seat zone is one round trip, not 100,000). Nothing for a
/// general-admission zone.
pub async fn insert_layout(
    conn: &mut PgConnection,
    zone_id: Uuid,
    seats: &[Seat],
) -> Result<(), sqlx::Error> {
    if seats.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Seat) -> i32| seats.iter().map(f).collect::<Vec<i32>>();
    let sections: Vec<&str> = seats.iter().map(|s| s.section.as_str()).collect();
    let rows: Vec<&str> = seats.iter().map(|s| s.row.as_str()).collect();
    let xs: Vec<f32> = seats.iter().map(|s| s.x).collect();
    let ys: Vec<f32> = seats.iter().map(|s| s.y).collect();
    sqlx::query(
        "insert into seats (zone_id, seat_index, section, row_label, row_order, position,
                            number, x, y)
         select $1, t.ordinality - 1, t.section, t.row_label, t.row_order, t.position,
                t.number, t.x, t.y
         from unnest($2::text[], $3::text[], $4::int4[], $5::int4[], $6::int4[],
                     $7::float4[], $8::float4[])
              with ordinality as t(section, row_label, row_order, position, number, x, y)",
    )
    .bind(zone_id)
    .bind(&sections)
    .bind(&rows)
    .bind(column(|s| s.row_order))
    .bind(column(|s| s.position))
    .bind(column(|s| s.number))
    .bind(&xs)
    .bind(&ys)
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(())
}

/// The seats a batch on `zone_id` decides on, read under the zone's lock: every seat of
/// the zone when a request asks for the best available (the choice needs the whole row),
/// else only the seats the requests name.
///
/// The statements that touch seats are planned per call (`persistent(false)`, as
/// `idempotency::lookup`): a generic plan cached while a zone's seats were few would stay
/// a sequential scan of the table (millions of rows across zones). The writers' own
/// connections plan every execution anyway; the naive strategy, confirm, release and the
/// sweeper use the request pool's.
pub async fn load_board<'a>(
    conn: &mut PgConnection,
    zone_id: Uuid,
    requests: impl Iterator<Item = &'a NewHold>,
) -> Result<board::Board, sqlx::Error> {
    let mut named: Vec<i32> = Vec::new();
    let mut best_available = false;
    for hold in requests {
        match &hold.pick {
            SeatPick::Seats(seats) => named.extend(seats),
            SeatPick::BestAvailable => best_available = true,
            SeatPick::Quantity => {}
        }
    }
    let rows: Vec<(i32, i32, i32, SeatStatus)> = if best_available {
        sqlx::query_as(
            "select seat_index, row_order, position, status from seats where zone_id = $1",
        )
        .bind(zone_id)
        .persistent(false) // planned per call: see `idempotency::lookup`
        .fetch_all(conn)
        .await?
    } else {
        named.sort_unstable();
        named.dedup();
        sqlx::query_as(
            "select seat_index, row_order, position, status from seats
             where zone_id = $1 and seat_index = any($2)",
        )
        .bind(zone_id)
        .bind(&named)
        .persistent(false)
        .fetch_all(conn)
        .await?
    };
    let places = rows
        .into_iter()
        .map(|(index, row_order, position, status)| board::Place {
            index,
            row_order,
            position,
            free: status == SeatStatus::Available,
        });
    Ok(if best_available {
        board::Board::whole(places)
    } else {
        board::Board::new(places)
    })
}

/// Sells held seats, each to its ticket: seat `seats[i]`, held by `holds[i]`, to
/// `tickets[i]` (one row per seat, several holds at once), after the zone's counters moved
/// in the same transaction. Returns how many were sold: only seats still held by their
/// hold move.
pub async fn sell_held(
    conn: &mut PgConnection,
    zone_id: Uuid,
    holds: &[Uuid],
    seats: &[i32],
    tickets: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let sold = sqlx::query(
        "update seats s set status = 'sold', ticket_id = t.ticket_id
         from unnest($2::uuid[], $3::int4[], $4::uuid[]) as t(hold_id, seat_index, ticket_id)
         where s.zone_id = $1 and s.seat_index = t.seat_index and s.hold_id = t.hold_id
               and s.status = 'held'",
    )
    .bind(zone_id)
    .bind(holds)
    .bind(seats)
    .bind(tickets)
    .persistent(false)
    .execute(conn)
    .await?;
    Ok(sold.rows_affected())
}

/// Puts cancelled orders' seats back on sale (`sold` → `available`, owner cleared). Run
/// after the zones' counters moved in the same transaction, as every mover. Returns how
/// many seats were freed.
pub async fn free_sold(conn: &mut PgConnection, hold_ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let freed = sqlx::query(
        "update seats set status = 'available', hold_id = null, ticket_id = null
         where hold_id = any($1) and status = 'sold'",
    )
    .bind(hold_ids)
    .persistent(false) // planned per call: see `idempotency::lookup`
    .execute(conn)
    .await?;
    Ok(freed.rows_affected())
}

/// Frees the seats of holds that ended without a sale (released, expired). Run after the
/// zone's counters moved in the same transaction (zone row first, then its seats, as
/// every mover: no deadlocks). Returns how many seats were freed.
pub async fn free_held(conn: &mut PgConnection, hold_ids: &[Uuid]) -> Result<u64, sqlx::Error> {
    let freed = sqlx::query(
        "update seats set status = 'available', hold_id = null
         where hold_id = any($1) and status = 'held'",
    )
    .bind(hold_ids)
    .persistent(false) // planned per call: see `idempotency::lookup`
    .execute(conn)
    .await?;
    Ok(freed.rows_affected())
}

//! Assigned seating at the ledger: a zone's seats stored with it ([`insert_layout`]) and
//! the public seat map ([`map`]). The layout rules and the status map's form live in
//! `tessera_domain::seats`, shared with the edge.

pub mod map;

use axum::Router;
use sqlx::PgConnection;
use tessera_domain::seats::Seat;
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

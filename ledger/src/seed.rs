//! Demo data for `cargo xtask up`: one organiser with a handful of realistic events, all
//! created through the same validation and insert path as `POST /admin/v1/events`.
//! Re-running is safe: existing demo events are kept and a fresh admin token is issued.

use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use tessera_domain::catalog::EventStatus;
use tessera_domain::TenantId;

use crate::auth::{self, AdminTenant};
use crate::catalog::admin::{change_status, insert_event, NewEvent};

const DEMO_TENANT: &str = "Demo Promotions";

/// What the seed made, for printing.
pub struct Seeded {
    pub tenant_id: TenantId,
    pub admin_token: String,
    pub events_created: usize,
    /// A door's credential for the first demo event (`Main entrance`, valid a day).
    pub gate: crate::tickets::gates::IssuedGate,
}

/// The demo door's name and how long its credential lasts.
const DEMO_GATE: &str = "Main entrance";
const DEMO_GATE_VALID: Duration = Duration::days(1);

fn at(days: i64, hour: i64) -> String {
    let day: DateTime<Utc> = Utc::now()
        .duration_trunc(Duration::days(1))
        .unwrap_or_else(|_| Utc::now());
    (day + Duration::days(days) + Duration::hours(hour)).to_rfc3339()
}

fn zone(
    name: &str,
    price_minor: i64,
    currency: &str,
    capacity: i32,
    max_per_order: i32,
    sort_order: i32,
) -> Value {
    json!({"name": name, "price_minor": price_minor, "currency": currency, "capacity": capacity,
           "max_per_order": max_per_order, "sort_order": sort_order})
}

/// An assigned zone of `rows` rows (labelled 1, 2, …) of `seats_per_row` seats, with an
/// aisle after every `block` seats.
fn seated_zone(name: &str, price_minor: i64, rows: u32, seats_per_row: u32, block: u32) -> Value {
    let aisles: Vec<u32> = (block..seats_per_row).step_by(block as usize).collect();
    let rows: Vec<Value> = (1..=rows)
        .map(|row| json!({"row": row.to_string(), "seats": seats_per_row, "gaps_after": aisles}))
        .collect();
    json!({"name": name, "price_minor": price_minor, "currency": "EUR", "max_per_order": 6,
           "sort_order": 2, "seating": "assigned", "seats": {"rows": rows}})
}

fn demo_events() -> Vec<Value> {
    let sale_opened = at(-1, 9);
    vec![
        json!({
            "slug": "aurora-skies-world-tour-berlin", "title": "Aurora Skies — World Tour", "category": "concerts",
            "description": "The synth-pop duo's first stadium tour, with a 360° stage.", "featured": true,
            "max_tickets_per_customer": 6,
            "venue": {"name": "Olympiastadion", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
            "shows": [
                {"starts_at": at(45, 18), "sale_starts_at": sale_opened, "zones": [
                    zone("Golden Circle", 18900, "EUR", 2000, 4, 0), zone("Floor", 8900, "EUR", 20000, 6, 1),
                    seated_zone("Tier 1 seated", 12900, 50, 300, 25), zone("Tier 2 seated", 6900, "EUR", 30000, 6, 3)]},
                {"starts_at": at(46, 18), "sale_starts_at": sale_opened, "zones": [
                    zone("Golden Circle", 18900, "EUR", 2000, 4, 0), zone("Floor", 8900, "EUR", 20000, 6, 1)]}
            ]
        }),
        json!({
            "slug": "flash-sale-demo", "title": "Midnight Release Party — Flash Sale", "category": "concerts",
            "description": "A tiny club show: 100 tickets, made for trying a sell-out.", "featured": true,
            "max_tickets_per_customer": 2,
            "venue": {"name": "Kleiner Club", "city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
            "shows": [{"starts_at": at(14, 21), "sale_starts_at": sale_opened, "zones": [
                zone("General admission", 2500, "EUR", 100, 2, 0)]}]
        }),
        json!({
            "slug": "cup-final-2027", "title": "National Cup Final", "category": "sports",
            "description": "Ninety minutes (and maybe penalties) for the trophy.",
            "venue": {"name": "Allianz Arena", "city": "Munich", "country": "DE", "timezone": "Europe/Berlin"},
            "shows": [{"starts_at": at(60, 19), "sale_starts_at": sale_opened, "zones": [
                zone("Home end", 5500, "EUR", 25000, 4, 0), zone("Away end", 5500, "EUR", 8000, 4, 1),
                zone("Main stand", 9900, "EUR", 20000, 4, 2)]}]
        }),
        json!({
            "slug": "hamlet-globe", "title": "Hamlet", "category": "theatre",
            "description": "Shakespeare's tragedy in a new production, three nights only.",
            "venue": {"name": "The Globe", "city": "London", "country": "GB", "timezone": "Europe/London"},
            "shows": [
                {"starts_at": at(20, 19), "sale_starts_at": sale_opened, "zones": [
                    zone("Stalls", 6500, "GBP", 400, 8, 0), zone("Yard (standing)", 1500, "GBP", 700, 8, 1)]},
                {"starts_at": at(21, 19), "sale_starts_at": sale_opened, "zones": [
                    zone("Stalls", 6500, "GBP", 400, 8, 0), zone("Yard (standing)", 1500, "GBP", 700, 8, 1)]},
                {"starts_at": at(22, 14), "sale_starts_at": sale_opened, "zones": [
                    zone("Stalls", 5500, "GBP", 400, 8, 0), zone("Yard (standing)", 1200, "GBP", 700, 8, 1)]}
            ]
        }),
        json!({
            "slug": "late-night-laughs", "title": "Late Night Laughs", "category": "comedy",
            "venue": {"name": "Comedy Cellar", "city": "Amsterdam", "country": "NL", "timezone": "Europe/Amsterdam"},
            "shows": [{"starts_at": at(7, 21), "sale_starts_at": sale_opened, "zones": [
                zone("Seated", 2200, "EUR", 180, 6, 0)]}]
        }),
        json!({
            "slug": "summer-beats-festival", "title": "Summer Beats Festival", "category": "festivals",
            "description": "Three stages, forty artists, one weekend by the lake.",
            "booking_closes_at": at(89, 0),
            "venue": {"name": "Lakeside Park", "city": "Vienna", "country": "AT", "timezone": "Europe/Vienna"},
            "shows": [{"starts_at": at(90, 12), "sale_starts_at": sale_opened, "zones": [
                zone("Weekend pass", 19900, "EUR", 40000, 10, 0), zone("VIP weekend", 44900, "EUR", 1500, 4, 1)]}]
        }),
    ]
}

/// Seeds the demo organiser and publishes its events.
pub async fn run(pool: &PgPool) -> anyhow::Result<Seeded> {
    let mut tx = pool.begin().await?;
    let existing: Option<uuid::Uuid> =
        sqlx::query_scalar("select id from tenants where name = $1 order by created_at limit 1")
            .bind(DEMO_TENANT)
            .fetch_optional(&mut *tx)
            .await?;
    let (tenant_id, admin_token) = match existing {
        Some(id) => (
            TenantId(id),
            auth::issue_token(&mut tx, TenantId(id), "seed").await?,
        ),
        None => auth::create_tenant(&mut tx, DEMO_TENANT).await?,
    };
    let mut events_created = 0;
    let mut first_event = None;
    for event in demo_events() {
        let slug = event["slug"].as_str().unwrap_or_default().to_owned();
        let exists: bool = sqlx::query_scalar(
            "select exists(select 1 from events where tenant_id = $1 and slug = $2)",
        )
        .bind(tenant_id.as_uuid())
        .bind(&slug)
        .fetch_one(&mut *tx)
        .await?;
        if exists {
            first_event = first_event.or(Some(slug));
            continue;
        }
        let new: NewEvent =
            serde_json::from_value(event).with_context(|| format!("demo event {slug}"))?;
        let event_id = insert_event(&mut tx, tenant_id, &new)
            .await
            .map_err(|e| anyhow::anyhow!("demo event {slug}: {e}"))?;
        change_status(
            &mut tx,
            AdminTenant(tenant_id),
            event_id,
            EventStatus::Published,
        )
        .await
        .map_err(|e| anyhow::anyhow!("publishing {slug}: {e}"))?;
        events_created += 1;
        first_event = first_event.or(Some(slug));
    }
    let gate = demo_gate(&mut tx, tenant_id, first_event.as_deref()).await?;
    tx.commit().await?;
    Ok(Seeded {
        tenant_id,
        admin_token,
        events_created,
        gate,
    })
}

/// A credential for the door of the demo event `slug`.
async fn demo_gate(
    conn: &mut sqlx::PgConnection,
    tenant_id: TenantId,
    slug: Option<&str>,
) -> anyhow::Result<crate::tickets::gates::IssuedGate> {
    let slug = slug.context("no demo events")?;
    let event_id: uuid::Uuid =
        sqlx::query_scalar("select id from events where tenant_id = $1 and slug = $2")
            .bind(tenant_id.as_uuid())
            .bind(slug)
            .fetch_one(&mut *conn)
            .await?;
    crate::tickets::gates::issue(
        conn,
        AdminTenant(tenant_id),
        tessera_domain::EventId(event_id),
        DEMO_GATE.to_owned(),
        DEMO_GATE_VALID,
    )
    .await
    .map_err(|e| anyhow::anyhow!("the demo gate of {slug}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_events_parse_and_validate() {
        for event in demo_events() {
            let new: NewEvent = serde_json::from_value(event).expect("demo event parses");
            new.parse().expect("demo event is valid");
        }
    }
}

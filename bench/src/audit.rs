//! Correctness after a run, from the database itself: a zone's counters must equal its
//! rows (no oversell, nothing lost), and the load generator's count of granted holds must
//! equal the hold rows.

use sqlx::PgPool;

/// One zone's counters and what its rows say.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ZoneAudit {
    pub capacity: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    /// Holds in any status, and their tickets.
    pub hold_rows: i64,
    pub hold_tickets: i64,
    /// Tickets of holds still `held`, and of `confirmed` ones.
    pub held_tickets: i64,
    pub confirmed_tickets: i64,
    /// Rows in `tickets` that are not void (a cancelled order's are).
    pub ticket_rows: i64,
}

impl ZoneAudit {
    pub async fn read(pool: &PgPool, zone_id: &str) -> anyhow::Result<Self> {
        let zone: uuid::Uuid = zone_id.parse()?;
        let (capacity, available, held, sold): (i32, i32, i32, i32) =
            sqlx::query_as("select capacity, available, held, sold from zones where id = $1")
                .bind(zone)
                .fetch_one(pool)
                .await?;
        let (hold_rows, hold_tickets, held_tickets, confirmed_tickets): (i64, i64, i64, i64) =
            sqlx::query_as(
                "select count(*), coalesce(sum(quantity), 0)::bigint,
                    coalesce(sum(quantity) filter (where status = 'held'), 0)::bigint,
                    coalesce(sum(quantity) filter (where status = 'confirmed'), 0)::bigint
             from holds where zone_id = $1",
            )
            .bind(zone)
            .fetch_one(pool)
            .await?;
        let ticket_rows: i64 = sqlx::query_scalar(
            "select count(*) from tickets where zone_id = $1 and status <> 'void'",
        )
        .bind(zone)
        .fetch_one(pool)
        .await?;
        Ok(Self {
            capacity: capacity.into(),
            available: available.into(),
            held: held.into(),
            sold: sold.into(),
            hold_rows,
            hold_tickets,
            held_tickets,
            confirmed_tickets,
            ticket_rows,
        })
    }

    /// Conservation (invariant 1) and the counters against the rows; `None` if all hold.
    pub fn conservation_error(&self) -> Option<String> {
        let ok = self.available >= 0
            && self.available + self.held + self.sold == self.capacity
            && self.held == self.held_tickets
            && self.sold == self.confirmed_tickets
            && self.sold == self.ticket_rows;
        (!ok).then(|| format!("{self:?}"))
    }

    /// After a run of holds only: conservation, plus the rows equal what the load
    /// generator was granted (`granted` 201s for `tickets` tickets).
    pub fn holds_error(&self, granted: u64, tickets: u64) -> Option<String> {
        self.conservation_error().or_else(|| {
            (self.hold_rows != granted as i64 || self.hold_tickets != tickets as i64).then(|| {
                format!(
                    "{} hold rows for {} tickets, but {granted} holds for {tickets} tickets were answered 201",
                    self.hold_rows, self.hold_tickets
                )
            })
        })
    }
}

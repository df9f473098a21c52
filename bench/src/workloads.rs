//! What the scenarios send: holds on one zone (buyers taking 1–4 tickets until it is sold
//! out), holds each confirmed (checkout) and reads of one path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::sync::{Mutex, PoisonError};

use serde_json::json;

use crate::load::{Answer, Call, Verdict, Workload};
use crate::stack::EventIds;

/// Buyers who hold one ticket on the event's first zone, then confirm it, then start
/// over: a sale where every buyer pays. Straight at one ledger (target 0).
pub struct Checkout {
    ids: EventIds,
    run: u64,
    /// Each client's hold awaiting its confirmation.
    pending: Mutex<Vec<Option<String>>>,
    pub holds: AtomicU64,
    pub confirms: AtomicU64,
}

impl Checkout {
    pub fn new(ids: EventIds, clients: usize) -> Self {
        Self {
            ids,
            run: u64::from(std::process::id()),
            pending: Mutex::new(vec![None; clients]),
            holds: AtomicU64::new(0),
            confirms: AtomicU64::new(0),
        }
    }
}

impl Workload for Checkout {
    fn next(&self, client: usize, n: u64) -> Option<Call> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner)[client].clone();
        let mut call = match pending {
            Some(hold_id) => Call::post_json(
                0,
                format!("/v1/holds/{hold_id}/confirm"),
                &json!({"payment_ref": "bench"}),
            )
            .header("idempotency-key", uuid::Uuid::new_v4().simple().to_string()),
            None => {
                let customer = format!("w{}-c{client}-{n}", self.run);
                hold_call(0, &self.ids.show_id, &self.ids.zone_ids[0], 1, &customer)
            }
        };
        // The answer's judge needs to know whose call it was.
        call.tag = client as u64;
        Some(call)
    }

    fn judge(&self, call: &Call, answer: &Answer, _latency: Duration, _measured: bool) -> Verdict {
        let client = usize::try_from(call.tag).unwrap_or(0);
        let confirming = call.path_and_query.ends_with("/confirm");
        match (confirming, answer.status) {
            (false, 201) => {
                let hold_id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v["hold_id"].as_str().map(str::to_owned));
                self.pending.lock().unwrap_or_else(PoisonError::into_inner)[client] = hold_id;
                self.holds.fetch_add(1, Ordering::Relaxed);
                Verdict::Ok
            }
            (true, 200) => {
                self.pending.lock().unwrap_or_else(PoisonError::into_inner)[client] = None;
                self.confirms.fetch_add(1, Ordering::Relaxed);
                Verdict::Ok
            }
            _ => Verdict::Failed,
        }
    }
}

/// A cheap, well-mixed hash (splitmix64): per-request choices that are random-looking but
/// repeatable, without a shared RNG between client tasks.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hold request body and headers for `(show, zone)`.
pub fn hold_call(
    target: usize,
    show_id: &str,
    zone_id: &str,
    quantity: u64,
    customer: &str,
) -> Call {
    let body = json!({"show_id": show_id, "zone_id": zone_id, "quantity": quantity, "customer_id": customer});
    Call::post_json(target, "/v1/holds", &body)
        .header("idempotency-key", uuid::Uuid::new_v4().simple().to_string())
}

/// Buyers holding 1–4 tickets (unless `quantity_max` is 1) on one zone. Every 201 is
/// counted, warm-up included, since the database must hold exactly those afterwards. A
/// client stops after a sold-out answer (`stop_when_sold_out`); later buyers would only be
/// refused.
pub struct Holds {
    pub show_id: String,
    pub zone_id: String,
    pub targets: usize,
    pub quantity_max: u64,
    pub stop_when_sold_out: bool,
    /// Distinguishes customers across runs on the same zone.
    pub run: u64,
    pub granted: AtomicU64,
    pub tickets: AtomicU64,
    pub sold_out: AtomicBool,
    /// Microseconds after `started` when the last 201 arrived.
    pub last_granted_us: AtomicU64,
    pub started: Instant,
}

impl Holds {
    pub fn new(show_id: &str, zone_id: &str, targets: usize, run: u64) -> Self {
        Self {
            show_id: show_id.to_owned(),
            zone_id: zone_id.to_owned(),
            targets,
            quantity_max: 4,
            stop_when_sold_out: true,
            run,
            granted: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            sold_out: AtomicBool::new(false),
            last_granted_us: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn quantity(&self, client: usize, n: u64) -> u64 {
        1 + mix((client as u64) << 40 ^ n ^ self.run << 56) % self.quantity_max
    }
}

impl Workload for Holds {
    fn next(&self, client: usize, n: u64) -> Option<Call> {
        if self.stop_when_sold_out && self.sold_out.load(Ordering::Relaxed) {
            return None;
        }
        let quantity = self.quantity(client, n);
        let customer = format!("r{}-c{client}-{n}", self.run);
        let target = (client + n as usize) % self.targets.max(1);
        let mut call = hold_call(target, &self.show_id, &self.zone_id, quantity, &customer);
        call.tag = quantity;
        Some(call)
    }

    fn judge(&self, call: &Call, answer: &Answer, _latency: Duration, _measured: bool) -> Verdict {
        judge_hold(answer, &self.sold_out, || {
            self.granted.fetch_add(1, Ordering::Relaxed);
            self.tickets.fetch_add(call.tag, Ordering::Relaxed);
            self.last_granted_us
                .fetch_max(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
        })
    }
}

/// A hold's answer: 201 granted (`on_grant` counts it), 409 refused, anything else failed.
/// A `sold_out` refusal stops the buyers; `insufficient_stock` (or `seat_unavailable`) does
/// not: smaller orders, or other seats, may still succeed.
fn judge_hold(answer: &Answer, sold_out: &AtomicBool, on_grant: impl FnOnce()) -> Verdict {
    match answer.status {
        201 => {
            on_grant();
            Verdict::Ok
        }
        409 => {
            if answer.body.windows(8).any(|w| w == b"sold_out") {
                sold_out.store(true, Ordering::Relaxed);
            }
            Verdict::Refused
        }
        _ => Verdict::Failed,
    }
}

/// `GET` of one of `paths` (chosen per request); 200 is success.
pub struct Reads {
    pub paths: Vec<String>,
}

impl Reads {
    pub fn one(path: &str) -> Self {
        Self {
            paths: vec![path.to_owned()],
        }
    }
}

impl Workload for Reads {
    fn next(&self, _client: usize, n: u64) -> Option<Call> {
        let path = &self.paths[(mix(n) % self.paths.len().max(1) as u64) as usize];
        Some(Call::get(0, path.clone()))
    }

    fn judge(&self, _call: &Call, answer: &Answer, _latency: Duration, _measured: bool) -> Verdict {
        if answer.status == 200 {
            Verdict::Ok
        } else {
            Verdict::Failed
        }
    }
}

/// Buyers of specific seats on one assigned zone: half ask for the best 1–4 seats, half
/// name 1–4 seats side by side in the popular block (the front rows' centre), so they
/// conflict as real buyers of good seats do. Every 201 is counted (its seats in `seats`).
pub struct SeatHolds {
    pub show_id: String,
    pub zone_id: String,
    pub layout: SeatLayout,
    /// Distinguishes customers across runs.
    pub run: u64,
    pub granted: AtomicU64,
    pub seats: AtomicU64,
    pub sold_out: AtomicBool,
}

/// The zone's rows as the bench makes them (all rows alike, one aisle).
#[derive(Debug, Clone, Copy)]
pub struct SeatLayout {
    pub rows: u64,
    pub seats_per_row: u64,
    /// The seat number after which each row has its aisle (away from the centre).
    pub aisle_after: u64,
}

/// The popular block: the first rows, and this many seats either side of the centre.
const POPULAR_ROWS: u64 = 10;
const POPULAR_HALF_WIDTH: u64 = 20;
const SEATS_PER_HOLD_MAX: u64 = 4;

impl SeatHolds {
    pub fn new(show_id: &str, zone_id: &str, layout: SeatLayout, run: u64) -> Self {
        Self {
            show_id: show_id.to_owned(),
            zone_id: zone_id.to_owned(),
            layout,
            run,
            granted: AtomicU64::new(0),
            seats: AtomicU64::new(0),
            sold_out: AtomicBool::new(false),
        }
    }

    /// `quantity` side-by-side seat indexes in the popular block, chosen by `h`.
    fn popular_seats(&self, h: u64, quantity: u64) -> Vec<u64> {
        let row = (h >> 16) % POPULAR_ROWS.min(self.layout.rows);
        let first = self.layout.seats_per_row / 2 - POPULAR_HALF_WIDTH;
        let start = first + (h >> 24) % (2 * POPULAR_HALF_WIDTH - quantity);
        (start..start + quantity)
            .map(|seat| row * self.layout.seats_per_row + seat)
            .collect()
    }
}

impl Workload for SeatHolds {
    fn next(&self, client: usize, n: u64) -> Option<Call> {
        if self.sold_out.load(Ordering::Relaxed) {
            return None;
        }
        let h = mix((client as u64) << 40 ^ n ^ self.run << 56);
        let quantity = 1 + h % SEATS_PER_HOLD_MAX;
        let customer = format!("r{}-c{client}-{n}", self.run);
        let body = if (h >> 8).is_multiple_of(2) {
            json!({"show_id": self.show_id, "zone_id": self.zone_id, "quantity": quantity,
                   "best_available": true, "customer_id": customer})
        } else {
            json!({"show_id": self.show_id, "zone_id": self.zone_id,
                   "seats": self.popular_seats(h, quantity), "customer_id": customer})
        };
        let mut call = Call::post_json(0, "/v1/holds", &body)
            .header("idempotency-key", uuid::Uuid::new_v4().simple().to_string());
        call.tag = quantity;
        Some(call)
    }

    fn judge(&self, call: &Call, answer: &Answer, _latency: Duration, _measured: bool) -> Verdict {
        judge_hold(answer, &self.sold_out, || {
            self.granted.fetch_add(1, Ordering::Relaxed);
            self.seats.fetch_add(call.tag, Ordering::Relaxed);
        })
    }
}

//! Holds: the request shapes clients send, the rules a hold must pass, and the views the
//! API returns. The edge runs [`check_hold`] against its cached catalog to reject bad
//! requests early; the ledger runs the same function under the zone's row lock, whatever
//! the edge decided.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::buyer::{Buyer, BuyerRequest, BuyerView};
use crate::catalog::EventStatus;
use crate::fields;
use crate::ids::{CustomerId, HoldId, ShowId, TicketId, ZoneId};
use crate::money::Currency;
use crate::problem::{ErrorCode, FieldError};

/// No zone may allow more than this per order, whatever its configuration: bounds a
/// single hold's effect on the counters and a confirm's ticket batch.
pub const QUANTITY_PER_ORDER_MAX: i32 = 100;
/// Longest payment reference accepted on confirm.
pub const PAYMENT_REF_LEN_MAX: usize = 128;

/// `POST /v1/holds` body exactly as sent. Unknown fields are rejected so a typo
/// (`quantiy`) is an error, not a silent default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub show_id: String,
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub zone_id: String,
    /// Tickets to hold: required for a general-admission zone and with `best_available`;
    /// with `seats`, omit it or give their count.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub quantity: Option<i64>,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:@-]+$")
    )]
    pub customer_id: String,
    /// Assigned seating: exactly these seats, all or nothing, by their indexes in the
    /// zone's layout (`GET /v1/shows/{show_id}/seats`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub seats: Option<Vec<i64>>,
    /// Assigned seating: the ledger picks `quantity` adjacent seats in one row, nearest the
    /// front and centre.
    #[serde(default)]
    pub best_available: bool,
}

/// Which tickets a hold asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatPick {
    /// A number of places in a general-admission zone.
    Quantity,
    /// These seats (indexes, ascending, no repeats), all or nothing.
    Seats(Vec<i32>),
    /// `quantity` adjacent seats the ledger picks.
    BestAvailable,
}

/// A hold request whose fields have been parsed; zone-specific rules still apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewHold {
    pub show_id: ShowId,
    pub zone_id: ZoneId,
    /// Tickets: the seat count for a seat hold.
    pub quantity: i32,
    pub customer_id: CustomerId,
    pub pick: SeatPick,
}

impl HoldRequest {
    /// Parse every field, reporting all bad fields at once.
    pub fn parse(&self) -> Result<NewHold, Vec<FieldError>> {
        let mut errors = Vec::new();
        let show_id = self
            .show_id
            .parse::<ShowId>()
            .map_err(|e| errors.push(FieldError::new("show_id", e)))
            .ok();
        let zone_id = self
            .zone_id
            .parse::<ZoneId>()
            .map_err(|e| errors.push(FieldError::new("zone_id", e)))
            .ok();
        let customer_id = CustomerId::parse(&self.customer_id)
            .map_err(|e| errors.push(FieldError::new("customer_id", e)))
            .ok();
        let pick = self.pick(&mut errors);
        match (show_id, zone_id, pick, customer_id) {
            (Some(show_id), Some(zone_id), Some((quantity, pick)), Some(customer_id))
                if errors.is_empty() =>
            {
                Ok(NewHold {
                    show_id,
                    zone_id,
                    quantity,
                    customer_id,
                    pick,
                })
            }
            _ => Err(errors),
        }
    }

    /// The tickets asked for: a quantity, these seats, or the best `quantity` seats.
    fn pick(&self, errors: &mut Vec<FieldError>) -> Option<(i32, SeatPick)> {
        match (&self.seats, self.best_available) {
            (Some(_), true) => {
                errors.push(FieldError::new(
                    "best_available",
                    "ask for `seats` or for `best_available`, not both",
                ));
                None
            }
            (Some(seats), false) => {
                let seats = parse_seats(seats, errors)?;
                let count = i32::try_from(seats.len()).ok()?;
                if self.quantity.is_some_and(|q| q != i64::from(count)) {
                    errors.push(FieldError::new(
                        "quantity",
                        format!("must be the number of seats ({count}), or left out"),
                    ));
                    return None;
                }
                Some((count, SeatPick::Seats(seats)))
            }
            (None, best_available) => {
                let quantity = parse_quantity(self.quantity, errors)?;
                let pick = if best_available {
                    SeatPick::BestAvailable
                } else {
                    SeatPick::Quantity
                };
                Some((quantity, pick))
            }
        }
    }
}

fn parse_quantity(quantity: Option<i64>, errors: &mut Vec<FieldError>) -> Option<i32> {
    match quantity.map(i32::try_from) {
        Some(Ok(q)) if (1..=QUANTITY_PER_ORDER_MAX).contains(&q) => Some(q),
        None => {
            errors.push(FieldError::new(
                "quantity",
                "required unless `seats` names the seats",
            ));
            None
        }
        _ => {
            errors.push(FieldError::new(
                "quantity",
                format!("must be between 1 and {QUANTITY_PER_ORDER_MAX}"),
            ));
            None
        }
    }
}

/// Seat indexes: 1 to [`QUANTITY_PER_ORDER_MAX`] of them, each a possible index, no
/// repeats; ascending (the order a batch takes them in).
fn parse_seats(seats: &[i64], errors: &mut Vec<FieldError>) -> Option<Vec<i32>> {
    let index_max = i64::try_from(crate::seats::SEATS_PER_ZONE_MAX).unwrap_or(i64::MAX) - 1;
    let count_ok = (1..=QUANTITY_PER_ORDER_MAX as usize).contains(&seats.len());
    let mut parsed: Vec<i32> = seats
        .iter()
        .filter(|&&s| (0..=index_max).contains(&s))
        .filter_map(|&s| i32::try_from(s).ok())
        .collect();
    parsed.sort_unstable();
    parsed.dedup();
    if !count_ok || parsed.len() != seats.len() {
        errors.push(FieldError::new(
            "seats",
            format!("1 to {QUANTITY_PER_ORDER_MAX} different seat indexes, each 0 to {index_max}"),
        ));
        return None;
    }
    Some(parsed)
}

/// `POST /v1/holds/{hold_id}/confirm` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The payment provider's reference for the captured payment: not blank, no control
    /// characters, at most 128 characters (as the document's `maxLength` and the column's
    /// check count them).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub payment_ref: String,
    /// Who bought, as a storefront's checkout asks; optional (API clients may not know).
    /// Personal data: shown on the order, never in webhook payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<BuyerRequest>,
}

/// A confirm body whose fields have been parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation<'a> {
    pub payment_ref: &'a str,
    pub buyer: Option<Buyer>,
}

impl ConfirmRequest {
    /// Parse every field, reporting all bad fields at once (`payment_ref`, `buyer.name`,
    /// `buyer.email`).
    pub fn parse(&self) -> Result<Confirmation<'_>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let payment_ref = parse_payment_ref(&self.payment_ref)
            .map_err(|e| errors.push(e))
            .ok();
        let buyer = match &self.buyer {
            None => Some(None),
            Some(buyer) => buyer.parse().map(Some).map_err(|e| errors.extend(e)).ok(),
        };
        match (payment_ref, buyer) {
            (Some(payment_ref), Some(buyer)) => Ok(Confirmation { payment_ref, buyer }),
            _ => Err(errors),
        }
    }
}

fn parse_payment_ref(r: &str) -> Result<&str, FieldError> {
    // Bounded in characters, as JSON Schema's maxLength and PostgreSQL's length() count;
    // the control characters are the shared field rule's ([`fields::no_controls`]), the
    // answer stays this field's own.
    let printable = fields::no_controls("payment_ref", r).is_ok();
    let too_long = r.chars().count() > PAYMENT_REF_LEN_MAX;
    if r.trim().is_empty() || too_long || !printable {
        return Err(FieldError::new(
            "payment_ref",
            format!("must be 1 to {PAYMENT_REF_LEN_MAX} printable characters"),
        ));
    }
    Ok(r)
}

/// Everything about a zone, its show and its event that decides whether a hold may be
/// attempted (stock and per-customer totals aside, which only the ledger knows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldContext {
    pub event_status: EventStatus,
    /// The event's booking window (either end open).
    pub booking_opens_at: Option<DateTime<Utc>>,
    pub booking_closes_at: Option<DateTime<Utc>>,
    /// The show's own sale window.
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
    pub min_per_order: i32,
    pub max_per_order: i32,
    /// The zone sells assigned seats: a hold names them or asks for the best ones.
    pub assigned_seating: bool,
}

/// A rule a hold broke: the stable code plus a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub detail: String,
    /// `seat_unavailable`: the requested seats that were not free.
    pub seats: Vec<i32>,
}

impl Rejection {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            seats: Vec::new(),
        }
    }

    /// Some of the seats a hold named are held, sold, blocked or not in the zone.
    pub fn seats_unavailable(seats: Vec<i32>) -> Self {
        Self {
            seats,
            ..Self::new(
                ErrorCode::SeatUnavailable,
                "some of these seats are not available: see `seats`",
            )
        }
    }

    /// The problem a client receives.
    pub fn problem(self) -> crate::Problem {
        crate::Problem::new(self.code)
            .with_detail(self.detail)
            .with_seats(self.seats)
    }
}

/// The zone named in a hold does not belong to the show it names.
pub fn zone_not_in_show() -> Rejection {
    Rejection::new(ErrorCode::NotFound, "zone not found in this show")
}

/// The rules every hold must pass before stock is considered, checked at `now`.
pub fn check_hold(
    ctx: &HoldContext,
    quantity: i32,
    pick: &SeatPick,
    now: DateTime<Utc>,
) -> Result<(), Rejection> {
    match (ctx.assigned_seating, pick) {
        (true, SeatPick::Quantity) => {
            return Err(Rejection::new(
                ErrorCode::ValidationFailed,
                "this zone sells assigned seats: name them in `seats` or ask for `best_available`",
            ))
        }
        (false, SeatPick::Seats(_) | SeatPick::BestAvailable) => {
            return Err(Rejection::new(
                ErrorCode::ValidationFailed,
                "this zone sells places by quantity: it has no seats",
            ))
        }
        _ => {}
    }
    if ctx.event_status != EventStatus::Published {
        return Err(Rejection::new(
            ErrorCode::EventNotOnSale,
            "the event is not on sale",
        ));
    }
    let opens = later(ctx.booking_opens_at, ctx.sale_starts_at);
    let closes = earlier(ctx.booking_closes_at, ctx.sale_ends_at);
    if let Some(opens) = opens.filter(|at| now < *at) {
        return Err(Rejection::new(
            ErrorCode::SaleNotStarted,
            format!("the sale opens at {}", opens.to_rfc3339()),
        ));
    }
    if let Some(closes) = closes.filter(|at| now >= *at) {
        return Err(Rejection::new(
            ErrorCode::SaleEnded,
            format!("the sale closed at {}", closes.to_rfc3339()),
        ));
    }
    if quantity < ctx.min_per_order || quantity > ctx.max_per_order {
        return Err(Rejection::new(
            ErrorCode::QuantityOutOfRange,
            format!(
                "quantity must be between {} and {} for this zone",
                ctx.min_per_order, ctx.max_per_order
            ),
        ));
    }
    Ok(())
}

/// The per-customer limit: tickets already live (held or sold) for this event plus the
/// request must not exceed `max_per_customer`.
pub fn check_customer_limit(
    already: i64,
    quantity: i32,
    max_per_customer: Option<i32>,
) -> Result<(), Rejection> {
    match max_per_customer {
        Some(max) if already + i64::from(quantity) > i64::from(max) => Err(Rejection::new(
            ErrorCode::CustomerLimitExceeded,
            format!("at most {max} tickets per customer for this event; {already} already held or bought"),
        )),
        _ => Ok(()),
    }
}

/// The stock rule: grant only what is there; say `sold_out` when nothing is.
pub fn check_stock(available: i32, quantity: i32) -> Result<(), Rejection> {
    if available <= 0 {
        Err(Rejection::new(
            ErrorCode::SoldOut,
            "no tickets left in this zone",
        ))
    } else if available < quantity {
        Err(Rejection::new(
            ErrorCode::InsufficientStock,
            format!("only {available} tickets left in this zone"),
        ))
    } else {
        Ok(())
    }
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.max(b)
}

fn earlier(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Held,
    Confirmed,
    Released,
    Expired,
    /// A confirmed order the organizer cancelled: its tickets void, its stock back on
    /// sale, a refund due.
    Cancelled,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "held" => Self::Held,
            "confirmed" => Self::Confirmed,
            "released" => Self::Released,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

crate::catalog::stored_as_text!(HoldStatus, "hold status", |text| HoldStatus::parse(text));

/// A hold as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldView {
    pub hold_id: HoldId,
    pub status: HoldStatus,
    pub show_id: ShowId,
    pub zone_id: ZoneId,
    pub customer_id: CustomerId,
    pub quantity: i32,
    /// A seat hold's seats (indexes in the zone's layout); absent for general admission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<i32>,
    pub unit_price_minor: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One issued ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketView {
    pub ticket_id: TicketId,
    /// The code printed on the ticket and scanned at the door.
    pub code: String,
    pub zone_id: ZoneId,
    /// The seat it admits to (an index in the zone's layout); absent for general admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat_index: Option<i32>,
}

/// `POST /v1/holds/{hold_id}/confirm` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfirmedHold {
    #[serde(flatten)]
    pub hold: HoldView,
    pub payment_ref: String,
    /// Who bought, when the confirm said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<BuyerView>,
    pub total_minor: i64,
    pub tickets: Vec<TicketView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_payment_ref_is_printable_not_blank_and_bounded_in_characters() {
        let parse = |r: &str| {
            ConfirmRequest {
                payment_ref: r.to_owned(),
                buyer: None,
            }
            .parse()
            .map(|c| c.payment_ref.to_owned())
        };
        assert_eq!(parse("pay_1"), Ok("pay_1".to_owned()));
        assert!(parse(&"x".repeat(PAYMENT_REF_LEN_MAX)).is_ok());
        // 128 two-byte characters (256 bytes) are 128 characters; one more is past the bound.
        assert!(parse(&"ü".repeat(PAYMENT_REF_LEN_MAX)).is_ok());
        for bad in [
            String::new(),
            "  ".to_owned(),
            "x".repeat(PAYMENT_REF_LEN_MAX + 1),
            "ü".repeat(PAYMENT_REF_LEN_MAX + 1),
            "pay\0".to_owned(),
            "pay\u{85}".to_owned(),
            "pay\ttab".to_owned(),
        ] {
            let errors = parse(&bad).expect_err(&bad);
            assert_eq!(errors.len(), 1, "{bad:?}");
            assert_eq!(errors[0].field, "payment_ref", "{bad:?}");
            assert_eq!(
                errors[0].message,
                format!("must be 1 to {PAYMENT_REF_LEN_MAX} printable characters"),
                "{bad:?}"
            );
        }
    }

    /// A confirm body as both tiers judge it: `body::parse_json`, then `parse`; the fields
    /// named, or the payment reference and the buyer's e-mail.
    fn confirm(body: serde_json::Value) -> Result<(String, Option<String>), Vec<String>> {
        let request: ConfirmRequest = crate::body::parse_json(body.to_string().as_bytes())
            .map_err(|p| p.errors.into_iter().map(|e| e.field).collect::<Vec<_>>())?;
        let fields = |errors: Vec<FieldError>| -> Vec<String> {
            errors.into_iter().map(|e| e.field).collect()
        };
        let parsed = request.parse().map_err(fields)?;
        let email = parsed.buyer.map(|b| b.email.as_str().to_owned());
        Ok((parsed.payment_ref.to_owned(), email))
    }

    #[test]
    fn a_confirm_may_name_its_buyer_and_each_broken_field_is_named() {
        let ada = serde_json::json!({"name": "Ada Lovelace", "email": "ada@example.com"});
        assert_eq!(
            confirm(serde_json::json!({"payment_ref": "pay_1", "buyer": ada})),
            Ok(("pay_1".to_owned(), Some("ada@example.com".to_owned())))
        );
        // Absent (or null) is as before buyers existed.
        for body in [
            serde_json::json!({"payment_ref": "pay_1"}),
            serde_json::json!({"payment_ref": "pay_1", "buyer": null}),
        ] {
            assert_eq!(confirm(body), Ok(("pay_1".to_owned(), None)));
        }
        let refused = |body| confirm(body).expect_err("invalid");
        assert_eq!(
            refused(serde_json::json!({"payment_ref": "pay_1",
                "buyer": {"name": "Ada", "email": "ada@localhost"}})),
            ["buyer.email"]
        );
        assert_eq!(
            refused(serde_json::json!({"payment_ref": " ",
                "buyer": {"name": "  ", "email": "ada@example.com"}})),
            ["payment_ref", "buyer.name"]
        );
        // Shape errors: an unknown field is named, a missing or mistyped one names `buyer`.
        for (buyer, field) in [
            (
                serde_json::json!({"name": "Ada", "email": "ada@example.com", "phone": "1"}),
                "buyer.phone",
            ),
            (serde_json::json!({"name": "Ada"}), "buyer"),
            (serde_json::json!("ada@example.com"), "buyer"),
        ] {
            assert_eq!(
                refused(serde_json::json!({"payment_ref": "pay_1", "buyer": buyer})),
                [field]
            );
        }
    }

    fn ctx() -> HoldContext {
        HoldContext {
            event_status: EventStatus::Published,
            booking_opens_at: None,
            booking_closes_at: None,
            sale_starts_at: Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).single(),
            sale_ends_at: Utc.with_ymd_and_hms(2026, 2, 1, 10, 0, 0).single(),
            min_per_order: 2,
            max_per_order: 6,
            assigned_seating: false,
        }
    }

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0)
            .single()
            .expect("valid date")
    }

    #[test]
    fn request_parse_reports_every_bad_field() {
        let req = HoldRequest {
            show_id: "nope".into(),
            zone_id: "0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01".into(),
            quantity: Some(0),
            customer_id: "has space".into(),
            seats: None,
            best_available: false,
        };
        let errors = req.parse().expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["show_id", "customer_id", "quantity"]);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let body = r#"{"show_id":"a","zone_id":"b","quantity":1,"customer_id":"c","quantiy":2}"#;
        assert!(serde_json::from_str::<HoldRequest>(body).is_err());
    }

    #[test]
    fn hold_rules_check_status_window_and_quantity() {
        let by_quantity = SeatPick::Quantity;
        assert_eq!(check_hold(&ctx(), 2, &by_quantity, at(15)), Ok(()));
        let code =
            |c: &HoldContext, q, now| check_hold(c, q, &by_quantity, now).map_err(|r| r.code);
        assert_eq!(code(&ctx(), 1, at(15)), Err(ErrorCode::QuantityOutOfRange));
        assert_eq!(code(&ctx(), 7, at(15)), Err(ErrorCode::QuantityOutOfRange));
        let early = Utc
            .with_ymd_and_hms(2025, 12, 31, 0, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(code(&ctx(), 2, early), Err(ErrorCode::SaleNotStarted));
        let mut closed_early = ctx();
        closed_early.booking_closes_at = Some(at(10));
        assert_eq!(code(&closed_early, 2, at(15)), Err(ErrorCode::SaleEnded));
        let mut draft = ctx();
        draft.event_status = EventStatus::Draft;
        assert_eq!(code(&draft, 2, at(15)), Err(ErrorCode::EventNotOnSale));
    }

    fn seat_request(body: serde_json::Value) -> Result<NewHold, Vec<String>> {
        let mut request = serde_json::json!({
            "show_id": "0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d01",
            "zone_id": "0192f0c4-7d3e-7b6a-9c1e-3f5a2b8c9d02",
            "customer_id": "ann"
        });
        if let (Some(request), Some(body)) = (request.as_object_mut(), body.as_object()) {
            request.extend(body.clone());
        }
        let request: HoldRequest = serde_json::from_value(request).expect("shape");
        request
            .parse()
            .map_err(|errors| errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn a_hold_asks_for_a_quantity_these_seats_or_the_best_ones() {
        let hold = seat_request(serde_json::json!({"seats": [12, 3, 7]})).expect("valid");
        assert_eq!(
            (hold.quantity, hold.pick),
            (3, SeatPick::Seats(vec![3, 7, 12]))
        );
        let hold = seat_request(serde_json::json!({"seats": [4], "quantity": 1})).expect("valid");
        assert_eq!(hold.pick, SeatPick::Seats(vec![4]));
        let hold = seat_request(serde_json::json!({"quantity": 4, "best_available": true}))
            .expect("valid");
        assert_eq!((hold.quantity, hold.pick), (4, SeatPick::BestAvailable));
        let hold = seat_request(serde_json::json!({"quantity": 2})).expect("valid");
        assert_eq!(hold.pick, SeatPick::Quantity);

        let refused = |body| seat_request(body).expect_err("invalid");
        assert_eq!(refused(serde_json::json!({"seats": [1, 1]})), ["seats"]);
        assert_eq!(refused(serde_json::json!({"seats": []})), ["seats"]);
        assert_eq!(refused(serde_json::json!({"seats": [-1]})), ["seats"]);
        let many: Vec<i64> = (0..10_000).collect();
        assert_eq!(refused(serde_json::json!({ "seats": many })), ["seats"]);
        assert_eq!(
            refused(serde_json::json!({"seats": [1, 2], "quantity": 3})),
            ["quantity"]
        );
        assert_eq!(
            refused(serde_json::json!({"seats": [1], "best_available": true})),
            ["best_available"]
        );
        assert_eq!(
            refused(serde_json::json!({"best_available": true})),
            ["quantity"]
        );
        assert_eq!(refused(serde_json::json!({})), ["quantity"]);
    }

    #[test]
    fn seats_are_for_assigned_zones_and_quantities_for_the_others() {
        let assigned = HoldContext {
            assigned_seating: true,
            ..ctx()
        };
        let seats = SeatPick::Seats(vec![1, 2]);
        assert_eq!(check_hold(&assigned, 2, &seats, at(15)), Ok(()));
        assert_eq!(
            check_hold(&assigned, 2, &SeatPick::BestAvailable, at(15)),
            Ok(())
        );
        let code =
            |c: &HoldContext, pick: &SeatPick| check_hold(c, 2, pick, at(15)).map_err(|r| r.code);
        assert_eq!(
            code(&assigned, &SeatPick::Quantity),
            Err(ErrorCode::ValidationFailed)
        );
        assert_eq!(code(&ctx(), &seats), Err(ErrorCode::ValidationFailed));
        assert_eq!(
            code(&ctx(), &SeatPick::BestAvailable),
            Err(ErrorCode::ValidationFailed)
        );
        // The zone's order limits count seats too.
        assert_eq!(
            check_hold(&assigned, 7, &SeatPick::BestAvailable, at(15)).map_err(|r| r.code),
            Err(ErrorCode::QuantityOutOfRange)
        );
    }

    #[test]
    fn customer_limit_counts_live_tickets() {
        assert!(check_customer_limit(4, 2, Some(6)).is_ok());
        assert_eq!(
            check_customer_limit(5, 2, Some(6)).map_err(|r| r.code),
            Err(ErrorCode::CustomerLimitExceeded)
        );
        assert!(check_customer_limit(1000, 2, None).is_ok());
    }

    #[test]
    fn stock_rule_distinguishes_sold_out_from_short() {
        assert!(check_stock(3, 3).is_ok());
        assert_eq!(
            check_stock(0, 1).map_err(|r| r.code),
            Err(ErrorCode::SoldOut)
        );
        assert_eq!(
            check_stock(2, 3).map_err(|r| r.code),
            Err(ErrorCode::InsufficientStock)
        );
    }
}

//! The rules admin writes share, as parsers: create and edit turn a request's fields into
//! typed values here, once, with the same checks (a zone, an event's own fields, a sale
//! or booking window). Every problem found is reported at once, each with its field path.

use chrono::{DateTime, Utc};
use tessera_domain::holds::QUANTITY_PER_ORDER_MAX;
use tessera_domain::money::PRICE_MINOR_MAX;
use tessera_domain::{fields, FieldError};

use crate::error::ApiError;

const TITLE_LEN_MAX: usize = 200;
const DESCRIPTION_LEN_MAX: usize = 10_000;
const ZONE_NAME_LEN_MAX: usize = 100;
const ZONE_CAPACITY_MAX: i32 = 1_000_000;
/// Longest category slug a request may name (the stored ones are shorter).
const CATEGORY_LEN_MAX: usize = 100;

/// The field errors found while parsing one request.
#[derive(Default)]
pub(super) struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl std::fmt::Display) {
        self.0.push(FieldError::new(field, message));
    }

    /// The parsed value, or `None` with its error recorded.
    pub(super) fn check<T>(&mut self, parsed: Result<T, FieldError>) -> Option<T> {
        parsed.map_err(|e| self.0.push(e)).ok()
    }

    /// A 422 listing every recorded error, or else the value `build` assembles from the
    /// parts (each `Some`, since a part is `None` only with an error recorded).
    pub(super) fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        if !self.0.is_empty() {
            return Err(ApiError::Validation(self.0));
        }
        build().ok_or_else(|| anyhow::anyhow!("a part failed to parse without an error").into())
    }
}

/// One-line text that is not blank, at most `max` characters, without control characters
/// (the shared rule, [`fields::single_line`]).
pub(super) fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    fields::single_line(field, value, max)
}

/// A category slug as given (an unknown one is refused by the foreign key).
pub(super) fn category(value: &str) -> Result<String, FieldError> {
    text("category", value, CATEGORY_LEN_MAX)
}

/// An open/close pair, either end optional; when both are set it opens before it closes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) opens: Option<DateTime<Utc>>,
    pub(super) closes: Option<DateTime<Utc>>,
}

impl Window {
    /// Each end is `(field path, value)`; a set end must be in the shared instant range,
    /// and a window with both ends must open before it closes (reported on the closing end).
    pub(super) fn parse(
        (opens_field, opens): (&str, Option<DateTime<Utc>>),
        (closes_field, closes): (&str, Option<DateTime<Utc>>),
        errors: &mut FieldErrors,
    ) -> Option<Self> {
        let opens = errors.check(fields::optional_instant(opens_field, opens));
        let closes = errors.check(fields::optional_instant(closes_field, closes));
        match (opens?, closes?) {
            (Some(o), Some(c)) if o >= c => {
                errors.push(closes_field, "the window must open before it closes");
                None
            }
            (opens, closes) => Some(Self { opens, closes }),
        }
    }
}

/// An event's own editable fields as a request gives them (create, or edit merged with
/// the stored values).
pub(super) struct EventInput<'a> {
    pub(super) title: &'a str,
    pub(super) description: &'a str,
    pub(super) booking_opens_at: Option<DateTime<Utc>>,
    pub(super) booking_closes_at: Option<DateTime<Utc>>,
    pub(super) max_tickets_per_customer: Option<i32>,
}

/// An event's own fields, checked.
pub(super) struct EventFields {
    pub(super) title: String,
    pub(super) description: String,
    pub(super) booking: Window,
    /// At least 1 when set.
    pub(super) max_tickets_per_customer: Option<i32>,
}

impl EventInput<'_> {
    pub(super) fn parse(self, errors: &mut FieldErrors) -> Option<EventFields> {
        let title = errors.check(text("title", self.title, TITLE_LEN_MAX));
        let description = errors.check(description(self.description));
        let max_tickets_per_customer =
            errors.check(max_per_customer(self.max_tickets_per_customer));
        let booking = Window::parse(
            ("booking_opens_at", self.booking_opens_at),
            ("booking_closes_at", self.booking_closes_at),
            errors,
        );
        Some(EventFields {
            title: title?,
            description: description?,
            booking: booking?,
            max_tickets_per_customer: max_tickets_per_customer?,
        })
    }
}

/// Multi-line: tabs and line breaks are kept, other control characters refused.
fn description(value: &str) -> Result<String, FieldError> {
    fields::multi_line("description", value, DESCRIPTION_LEN_MAX)
}

fn max_per_customer(value: Option<i32>) -> Result<Option<i32>, FieldError> {
    match value {
        Some(m) if m < 1 => Err(FieldError::new(
            "max_tickets_per_customer",
            "must be at least 1",
        )),
        _ => Ok(value),
    }
}

/// A zone's editable fields as a request gives them (create, or edit merged with the
/// stored row).
pub(super) struct ZoneInput<'a> {
    pub(super) name: &'a str,
    pub(super) price_minor: i64,
    pub(super) capacity: i32,
    pub(super) min_per_order: i32,
    pub(super) max_per_order: i32,
    pub(super) sort_order: i32,
}

/// A zone's fields, checked: the same rules on create and on edit.
pub(super) struct ZoneFields {
    pub(super) name: String,
    /// `0..=PRICE_MINOR_MAX`.
    pub(super) price_minor: i64,
    /// `0..=ZONE_CAPACITY_MAX`.
    pub(super) capacity: i32,
    pub(super) limits: OrderLimits,
    pub(super) sort_order: i32,
}

/// Tickets per order: `1 <= min <= max <= QUANTITY_PER_ORDER_MAX`.
#[derive(Debug, Clone, Copy)]
pub(super) struct OrderLimits {
    pub(super) min: i32,
    pub(super) max: i32,
}

impl ZoneInput<'_> {
    /// `at` is the zone's field path (`zone`, `shows[0].zones[1]`).
    pub(super) fn parse(self, at: &str, errors: &mut FieldErrors) -> Option<ZoneFields> {
        let name = errors.check(text(&format!("{at}.name"), self.name, ZONE_NAME_LEN_MAX));
        let price_minor = errors.check(within(
            &format!("{at}.price_minor"),
            self.price_minor,
            PRICE_MINOR_MAX,
        ));
        let capacity = errors.check(within(
            &format!("{at}.capacity"),
            self.capacity,
            ZONE_CAPACITY_MAX,
        ));
        let limits = errors.check(OrderLimits::parse(
            &format!("{at}.max_per_order"),
            self.min_per_order,
            self.max_per_order,
        ));
        Some(ZoneFields {
            name: name?,
            price_minor: price_minor?,
            capacity: capacity?,
            limits: limits?,
            sort_order: self.sort_order,
        })
    }
}

/// `value` in `0..=max`.
fn within<T>(field: &str, value: T, max: T) -> Result<T, FieldError>
where
    T: PartialOrd + Default + std::fmt::Display,
{
    if value < T::default() || value > max {
        return Err(FieldError::new(field, format!("must be 0 to {max}")));
    }
    Ok(value)
}

impl OrderLimits {
    fn parse(field: &str, min: i32, max: i32) -> Result<Self, FieldError> {
        if min < 1 || min > max || max > QUANTITY_PER_ORDER_MAX {
            return Err(FieldError::new(
                field,
                format!("need 1 <= min_per_order <= max_per_order <= {QUANTITY_PER_ORDER_MAX}"),
            ));
        }
        Ok(Self { min, max })
    }
}

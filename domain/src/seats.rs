//! Assigned seating: a zone's seats as an organizer describes them, the layout they
//! become, and the compact form of their states that readers receive. Shared by the
//! ledger (which parses and stores layouts) and the edge (which reads and patches the
//! status map).
//!
//! A seat's id within its zone is its **index**: its place in the layout, 0-based and
//! dense, fixed when the zone is made. The status map, seat-change messages and seat
//! holds all name seats by it, so a 50,000-seat zone's states fit in 12,500 bytes.
//!
//! Adjacency (for best available) is by **position** within a row: two seats are side by
//! side when their positions differ by one. A gap (an aisle) in a row spec skips a
//! position, so seats across it are not adjacent though their numbers follow.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::fields::single_line;
use crate::problem::FieldError;

/// Seats one zone may have (the issue's bound: a stadium section's worth in one request).
pub const SEATS_PER_ZONE_MAX: usize = 100_000;
/// Rows one zone may have.
pub const ROWS_PER_ZONE_MAX: usize = 2_000;
/// Seats one row may have.
pub const SEATS_PER_ROW_MAX: i32 = 1_000;
/// Gaps one row may have.
pub const GAPS_PER_ROW_MAX: usize = 50;
/// Characters of a section name, a row label.
pub const SECTION_LEN_MAX: usize = 32;
pub const ROW_LABEL_LEN_MAX: usize = 16;
/// Seat numbers lie in `1..=SEAT_NUMBER_MAX`.
pub const SEAT_NUMBER_MAX: i32 = 100_000;
/// A listed seat's `x` and `y` lie in `-SEAT_COORDINATE_MAX..=SEAT_COORDINATE_MAX`: a
/// drawing's coordinates, exact in `f32` (the column's `real`).
pub const SEAT_COORDINATE_MAX: f32 = 1_000_000.0;

/// A seat's state. Stored as text; in the status map, two bits ([`Self::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
    /// Out of sale (house seats, broken seats): not counted in the zone's capacity.
    Blocked,
}

impl SeatStatus {
    pub const ALL: [Self; 4] = [Self::Available, Self::Held, Self::Sold, Self::Blocked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Held => "held",
            Self::Sold => "sold",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The two bits of the status map: 0 available, 1 held, 2 sold, 3 blocked.
    pub fn code(self) -> u8 {
        match self {
            Self::Available => 0,
            Self::Held => 1,
            Self::Sold => 2,
            Self::Blocked => 3,
        }
    }

    fn from_code(code: u8) -> Self {
        Self::ALL[usize::from(code & 0b11)]
    }
}

crate::catalog::stored_as_text!(SeatStatus, "seat status", |text| SeatStatus::parse(text));

/// How an organizer describes a zone's seats: rows by count, or every seat listed
/// (exactly one of the two; a struct rather than an enum so that both, or neither, is a
/// 422 naming the field, not a body serde cannot read).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SeatSpec {
    /// Rows front to back; each row's seats numbered from `first_number`.
    #[cfg_attr(feature = "openapi", schema(max_items = 2000))]
    pub rows: Option<Vec<RowSpec>>,
    /// Every seat, in layout order; a row's seats are adjacent by consecutive numbers.
    #[cfg_attr(feature = "openapi", schema(max_items = 100000))]
    pub list: Option<Vec<ListedSeat>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// Empty, or a name without control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = r"^([^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*)?$"
        )
    )]
    pub section: String,
    /// The row's label (`A`, `F`, `12`).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 16,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub row: String,
    /// Seats in the row.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub seats: i32,
    #[serde(default = "first_number_default")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub first_number: i32,
    /// Seat numbers after which the row has a gap (an aisle): no adjacency across it.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub gaps_after: Vec<i32>,
}

fn first_number_default() -> i32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListedSeat {
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 32,
            pattern = r"^([^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*)?$"
        )
    )]
    pub section: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 16,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub row: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub number: i32,
    #[cfg_attr(feature = "openapi", schema(minimum = -1000000, maximum = 1000000))]
    pub x: f32,
    #[cfg_attr(feature = "openapi", schema(minimum = -1000000, maximum = 1000000))]
    pub y: f32,
}

/// One seat of a parsed layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Seat {
    pub section: String,
    pub row: String,
    /// Rows in layout order, front to back (0-based).
    pub row_order: i32,
    /// Place along the row (adjacent seats differ by one).
    pub position: i32,
    pub number: i32,
    pub x: f32,
    pub y: f32,
}

impl Seat {
    /// What a buyer reads: `Stalls F12`, or `F12` without a section.
    pub fn label(&self) -> String {
        if self.section.is_empty() {
            format!("{}{}", self.row, self.number)
        } else {
            format!("{} {}{}", self.section, self.row, self.number)
        }
    }
}

impl SeatSpec {
    /// The seats in layout order (their indexes), or every broken rule, under `at`.
    pub fn parse(&self, at: &str) -> Result<Vec<Seat>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let seats = match (&self.rows, &self.list) {
            (Some(rows), None) => parse_rows(rows, &format!("{at}.rows"), &mut errors),
            (None, Some(list)) => parse_list(list, &format!("{at}.list"), &mut errors),
            _ => {
                let e = FieldError::new(at, "give the seats as either `rows` or `list`");
                return Err(vec![e]);
            }
        };
        if seats.is_empty() && errors.is_empty() {
            errors.push(FieldError::new(at, "a zone needs at least one seat"));
        }
        if seats.len() > SEATS_PER_ZONE_MAX {
            errors.push(FieldError::new(
                at,
                format!("at most {SEATS_PER_ZONE_MAX} seats per zone"),
            ));
        }
        if errors.is_empty() {
            check_unique_places(&seats, at, &mut errors);
        }
        if errors.is_empty() {
            Ok(seats)
        } else {
            Err(errors)
        }
    }
}

fn parse_rows(rows: &[RowSpec], at: &str, errors: &mut Vec<FieldError>) -> Vec<Seat> {
    if rows.len() > ROWS_PER_ZONE_MAX {
        errors.push(FieldError::new(
            at,
            format!("at most {ROWS_PER_ZONE_MAX} rows per zone"),
        ));
        return Vec::new();
    }
    let mut seats = Vec::new();
    for (row_order, row) in (0_i32..).zip(rows) {
        let at = format!("{at}[{row_order}]");
        let Some(labels) = row_labels(&row.section, &row.row, &at, errors) else {
            continue;
        };
        if !(1..=SEATS_PER_ROW_MAX).contains(&row.seats) {
            errors.push(FieldError::new(
                format!("{at}.seats"),
                format!("must be 1 to {SEATS_PER_ROW_MAX}"),
            ));
            continue;
        }
        let last = row.first_number.checked_add(row.seats - 1);
        if row.first_number < 1 || last.is_none_or(|last| last > SEAT_NUMBER_MAX) {
            errors.push(FieldError::new(
                format!("{at}.first_number"),
                format!("the row's numbers must lie in 1 to {SEAT_NUMBER_MAX}"),
            ));
            continue;
        }
        if let Err(e) = check_gaps(row, &at) {
            errors.push(e);
            continue;
        }
        seats.extend(row_seats(row, row_order, labels));
    }
    seats
}

/// The row's section and label, checked.
fn row_labels(
    section: &str,
    row: &str,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<(String, String)> {
    let section = if section.is_empty() {
        Ok(String::new())
    } else {
        single_line(&format!("{at}.section"), section, SECTION_LEN_MAX)
    };
    let row = single_line(&format!("{at}.row"), row, ROW_LABEL_LEN_MAX);
    match (section, row) {
        (Ok(section), Ok(row)) => Some((section, row)),
        (section, row) => {
            errors.extend(section.err());
            errors.extend(row.err());
            None
        }
    }
}

fn check_gaps(row: &RowSpec, at: &str) -> Result<(), FieldError> {
    let last = row.first_number + row.seats - 1;
    let inside = |n: &i32| (row.first_number..last).contains(n);
    if row.gaps_after.len() > GAPS_PER_ROW_MAX || !row.gaps_after.iter().all(inside) {
        return Err(FieldError::new(
            format!("{at}.gaps_after"),
            "each gap after a seat of the row but its last",
        ));
    }
    Ok(())
}

/// A row spec's seats: numbers from `first_number`, one position each, and one more
/// position after each gap. Drawn on a grid: `x` the position, `y` the row.
fn row_seats(row: &RowSpec, row_order: i32, (section, label): (String, String)) -> Vec<Seat> {
    let mut position = 0;
    (row.first_number..row.first_number + row.seats)
        .map(|number| {
            let seat = Seat {
                section: section.clone(),
                row: label.clone(),
                row_order,
                position,
                number,
                x: position as f32,
                y: row_order as f32,
            };
            position += if row.gaps_after.contains(&number) {
                2
            } else {
                1
            };
            seat
        })
        .collect()
}

fn parse_list(list: &[ListedSeat], at: &str, errors: &mut Vec<FieldError>) -> Vec<Seat> {
    if list.len() > SEATS_PER_ZONE_MAX {
        errors.push(FieldError::new(
            at,
            format!("at most {SEATS_PER_ZONE_MAX} seats per zone"),
        ));
        return Vec::new();
    }
    // Rows in the order they first appear.
    let mut row_orders: std::collections::HashMap<(&str, &str), i32> = Default::default();
    let mut seats = Vec::with_capacity(list.len());
    for (i, seat) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let Some((section, row)) = row_labels(&seat.section, &seat.row, &at, errors) else {
            continue;
        };
        if !(1..=SEAT_NUMBER_MAX).contains(&seat.number) {
            errors.push(FieldError::new(
                format!("{at}.number"),
                format!("must be 1 to {SEAT_NUMBER_MAX}"),
            ));
            continue;
        }
        let on_drawing = |c: f32| (-SEAT_COORDINATE_MAX..=SEAT_COORDINATE_MAX).contains(&c);
        if !on_drawing(seat.x) || !on_drawing(seat.y) {
            errors.push(FieldError::new(
                &at,
                format!("x and y must lie in -{SEAT_COORDINATE_MAX} to {SEAT_COORDINATE_MAX}"),
            ));
            continue;
        }
        let next = i32::try_from(row_orders.len()).unwrap_or(i32::MAX);
        let row_order = *row_orders
            .entry((seat.section.as_str(), seat.row.as_str()))
            .or_insert(next);
        seats.push(Seat {
            section,
            row,
            row_order,
            position: seat.number,
            number: seat.number,
            x: seat.x,
            y: seat.y,
        });
    }
    seats
}

/// No two seats share a row and number (the label a buyer reads).
fn check_unique_places(seats: &[Seat], at: &str, errors: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::with_capacity(seats.len());
    for (index, seat) in seats.iter().enumerate() {
        if !seen.insert((seat.section.as_str(), seat.row.as_str(), seat.number)) {
            errors.push(FieldError::new(
                at,
                format!("the same seat twice: {} (seat {index})", seat.label()),
            ));
            return;
        }
    }
}

/// `GET /v1/shows/{show_id}/seats`: every assigned zone of a show, its layout and the
/// state of each seat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeatMap {
    pub show_id: crate::ShowId,
    pub event_id: crate::EventId,
    /// The show's assigned zones (general-admission zones have no seats), in zone order.
    pub zones: Vec<ZoneSeats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneSeats {
    pub zone_id: crate::ZoneId,
    /// The zone's counters' version: the map is as of this version.
    pub version: i64,
    pub seat_count: i32,
    /// The layout: runs of consecutive seats (by index) in one row; stable once the zone
    /// exists.
    pub runs: Vec<SeatRun>,
    /// Each seat's state in index order, two bits per seat (0 available, 1 held, 2 sold,
    /// 3 blocked; four seats per byte, the first in the low bits), URL-safe base64
    /// without padding.
    pub status: String,
}

/// Seats side by side: `count` seats from index `first_seat`, in one row, adjacent (no gap
/// between them), numbered up from `first_number` and drawn at evenly spaced points from
/// (`x`, `y`), each `dx`, `dy` from the last. A row of 1,000 seats without gaps is one run,
/// whatever its length; a listed layout with irregular spacing splits where it stops being
/// even.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeatRun {
    /// Empty when the zone has no sections.
    pub section: String,
    pub row: String,
    /// Index of the run's first seat (the status map's order).
    pub first_seat: i32,
    pub count: i32,
    pub first_number: i32,
    pub x: f32,
    pub y: f32,
    pub dx: f32,
    pub dy: f32,
}

/// How far a listed seat may lie from its run's evenly spaced point and still join it
/// (drawing units: far below anything a screen shows).
const RUN_SPACING_TOLERANCE: f32 = 1e-3;

impl SeatRun {
    fn start(index: i32, seat: &Seat) -> Self {
        Self {
            section: seat.section.clone(),
            row: seat.row.clone(),
            first_seat: index,
            count: 1,
            first_number: seat.number,
            x: seat.x,
            y: seat.y,
            dx: 0.0,
            dy: 0.0,
        }
    }

    /// Extends the run by `next` (the seat after `last`, its last seat) if `next` sits right
    /// beside it, keeps the numbering and the spacing.
    fn extend(&mut self, last: &Seat, next: &Seat) -> bool {
        let beside = next.section == self.section
            && next.row == self.row
            && next.row_order == last.row_order
            && next.position == last.position + 1
            && next.number == last.number + 1;
        if !beside {
            return false;
        }
        let (dx, dy) = (next.x - last.x, next.y - last.y);
        let even = self.count == 1
            || ((dx - self.dx).abs() <= RUN_SPACING_TOLERANCE
                && (dy - self.dy).abs() <= RUN_SPACING_TOLERANCE);
        if !even {
            return false;
        }
        if self.count == 1 {
            (self.dx, self.dy) = (dx, dy);
        }
        self.count += 1;
        true
    }
}

/// A zone's seats (in index order) as runs of seats side by side.
pub fn layout_runs(seats: &[Seat]) -> Vec<SeatRun> {
    let mut runs: Vec<SeatRun> = Vec::new();
    let mut last: Option<&Seat> = None;
    for (index, seat) in (0_i32..).zip(seats) {
        let extended = match (runs.last_mut(), last) {
            (Some(run), Some(last)) => run.extend(last, seat),
            _ => false,
        };
        if !extended {
            runs.push(SeatRun::start(index, seat));
        }
        last = Some(seat);
    }
    runs
}

/// A zone's seat states packed two bits a seat, four seats a byte, the first seat in the
/// low bits: the status map before its base64, and what the edge keeps and patches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedStatus {
    bytes: Vec<u8>,
    seat_count: usize,
}

impl PackedStatus {
    pub fn pack(statuses: impl IntoIterator<Item = SeatStatus>) -> Self {
        let mut bytes = Vec::new();
        let mut seat_count = 0;
        for (i, status) in statuses.into_iter().enumerate() {
            if i % 4 == 0 {
                bytes.push(0);
            }
            if let Some(last) = bytes.last_mut() {
                *last |= status.code() << ((i % 4) * 2);
            }
            seat_count = i + 1;
        }
        Self { bytes, seat_count }
    }

    /// `bytes` as the states of `seat_count` seats, if the length fits.
    pub fn from_bytes(bytes: Vec<u8>, seat_count: usize) -> Option<Self> {
        (bytes.len() == seat_count.div_ceil(4)).then_some(Self { bytes, seat_count })
    }

    /// The states of a status map (`status` in the seat map).
    pub fn from_map(map: &str, seat_count: usize) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(map)
            .ok()?;
        Self::from_bytes(bytes, seat_count)
    }

    pub fn seat_count(&self) -> usize {
        self.seat_count
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The state of seat `index`, or `None` if the zone has no such seat.
    pub fn get(&self, index: i32) -> Option<SeatStatus> {
        status_in(&self.bytes, self.seat_count, index)
    }

    /// Sets seat `index`'s state; `false` if the zone has no such seat.
    pub fn set(&mut self, index: i32, status: SeatStatus) -> bool {
        let Some(i) = usize::try_from(index).ok().filter(|&i| i < self.seat_count) else {
            return false;
        };
        let shift = (i % 4) * 2;
        self.bytes[i / 4] = (self.bytes[i / 4] & !(0b11 << shift)) | (status.code() << shift);
        true
    }

    /// The status map: URL-safe base64 without padding.
    pub fn to_map(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.bytes)
    }

    pub fn statuses(&self) -> impl Iterator<Item = SeatStatus> + '_ {
        (0..self.seat_count).map(|i| SeatStatus::from_code(self.bytes[i / 4] >> ((i % 4) * 2)))
    }
}

/// The state of seat `index` in packed states of `seat_count` seats, read in place (the
/// edge's hold checks read it straight from a stored entry).
pub fn status_in(packed: &[u8], seat_count: usize, index: i32) -> Option<SeatStatus> {
    let i = usize::try_from(index).ok().filter(|&i| i < seat_count)?;
    Some(SeatStatus::from_code(packed.get(i / 4)? >> ((i % 4) * 2)))
}

/// The states of a zone's seats in layout order, two bits per seat (four per byte, the
/// first seat in the low bits), as URL-safe base64 without padding: the status map.
pub fn encode_status_map(statuses: impl IntoIterator<Item = SeatStatus>) -> String {
    PackedStatus::pack(statuses).to_map()
}

/// The states of `seat_count` seats from a status map, or `None` if it is not one.
pub fn decode_status_map(map: &str, seat_count: usize) -> Option<Vec<SeatStatus>> {
    Some(
        PackedStatus::from_map(map, seat_count)?
            .statuses()
            .collect(),
    )
}

/// The seat map's entity tag, the same at the ledger and the edge: the sum of its zones'
/// versions (each only grows, and every change of a seat's state moves its zone's) and
/// their number.
pub fn map_etag(versions: impl IntoIterator<Item = i64>) -> String {
    let (sum, count) = versions
        .into_iter()
        .fold((0i128, 0usize), |(sum, count), v| {
            (sum + i128::from(v), count + 1)
        });
    format!("\"s{sum}-{count}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rows(spec: serde_json::Value) -> SeatSpec {
        serde_json::from_value(serde_json::json!({ "rows": spec })).expect("spec")
    }

    #[test]
    fn rows_become_seats_in_order_with_gaps_breaking_positions() {
        let spec = rows(serde_json::json!([
            {"row": "A", "seats": 4, "gaps_after": [2]},
            {"section": "Balcony", "row": "B", "seats": 2, "first_number": 11}
        ]));
        let seats = spec.parse("seats").expect("valid");
        let places: Vec<(i32, i32, i32)> = seats
            .iter()
            .map(|s| (s.row_order, s.number, s.position))
            .collect();
        assert_eq!(
            places,
            [
                (0, 1, 0),
                (0, 2, 1),
                (0, 3, 3),
                (0, 4, 4),
                (1, 11, 0),
                (1, 12, 1)
            ]
        );
        assert_eq!(seats[2].label(), "A3");
        assert_eq!(seats[5].label(), "Balcony B12");
    }

    /// Every seat as its run draws it: (index, section, row, number, x, y).
    fn drawn(runs: &[SeatRun]) -> Vec<(i32, String, String, i32, f32, f32)> {
        runs.iter()
            .flat_map(|run| {
                (0..run.count).map(move |i| {
                    let step = i as f32;
                    (
                        run.first_seat + i,
                        run.section.clone(),
                        run.row.clone(),
                        run.first_number + i,
                        run.x + step * run.dx,
                        run.y + step * run.dy,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn a_row_is_one_run_until_a_gap_and_draws_every_seat() {
        let spec = rows(serde_json::json!([
            {"row": "A", "seats": 300, "gaps_after": [25]},
            {"section": "Balcony", "row": "B", "seats": 2, "first_number": 11}
        ]));
        let seats = spec.parse("seats").expect("valid");
        let runs = layout_runs(&seats);
        let shape: Vec<(i32, i32, i32, f32, f32)> = runs
            .iter()
            .map(|r| (r.first_seat, r.count, r.first_number, r.x, r.dx))
            .collect();
        assert_eq!(
            shape,
            [
                (0, 25, 1, 0.0, 1.0),
                (25, 275, 26, 26.0, 1.0),
                (300, 2, 11, 0.0, 1.0)
            ]
        );
        let expected: Vec<_> = (0_i32..)
            .zip(&seats)
            .map(|(i, s)| (i, s.section.clone(), s.row.clone(), s.number, s.x, s.y))
            .collect();
        assert_eq!(drawn(&runs), expected);
    }

    #[test]
    fn listed_seats_split_where_numbering_or_spacing_breaks() {
        let spec: SeatSpec = serde_json::from_value(serde_json::json!({"list": [
            {"row": "A", "number": 1, "x": 0, "y": 0},
            {"row": "A", "number": 2, "x": 2, "y": 0.5},
            {"row": "A", "number": 3, "x": 4, "y": 1},
            {"row": "A", "number": 4, "x": 7, "y": 1},
            {"row": "A", "number": 6, "x": 9, "y": 1},
            {"row": "B", "number": 7, "x": 11, "y": 1}
        ]}))
        .expect("spec");
        let runs = layout_runs(&spec.parse("seats").expect("valid"));
        let counts: Vec<(i32, i32)> = runs.iter().map(|r| (r.first_seat, r.count)).collect();
        // A1–A3 evenly spaced; A4 farther; A6 after a missing number; B7 another row.
        assert_eq!(counts, [(0, 3), (3, 1), (4, 1), (5, 1)]);
        assert_eq!((runs[0].dx, runs[0].dy), (2.0, 0.5));
    }

    #[test]
    fn listed_seats_keep_their_order_and_coordinates() {
        let spec: SeatSpec = serde_json::from_value(serde_json::json!({"list": [
            {"row": "A", "number": 2, "x": 1.5, "y": 0},
            {"row": "B", "number": 1, "x": 0, "y": 1},
            {"row": "A", "number": 1, "x": 0.5, "y": 0}
        ]}))
        .expect("spec");
        let seats = spec.parse("seats").expect("valid");
        assert_eq!(
            seats.iter().map(|s| s.row_order).collect::<Vec<_>>(),
            [0, 1, 0]
        );
        assert_eq!(seats[0].x, 1.5);
    }

    #[test]
    fn broken_specs_name_their_fields() {
        let fields = |spec: SeatSpec| -> Vec<String> {
            spec.parse("z")
                .expect_err("invalid")
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(rows(serde_json::json!([]))), ["z"]);
        assert_eq!(
            fields(rows(serde_json::json!([{"row": "", "seats": 3}]))),
            ["z.rows[0].row"]
        );
        assert_eq!(
            fields(rows(serde_json::json!([{"row": "A", "seats": 0}]))),
            ["z.rows[0].seats"]
        );
        assert_eq!(
            fields(rows(
                serde_json::json!([{"row": "A", "seats": 3, "gaps_after": [3]}])
            )),
            ["z.rows[0].gaps_after"]
        );
        assert_eq!(
            fields(rows(
                serde_json::json!([{"row": "A", "seats": 2}, {"row": "A", "seats": 2}])
            )),
            ["z"],
            "the same seat twice"
        );
        let too_many = (0..101).map(|i| serde_json::json!({"row": format!("R{i}"), "seats": 1000}));
        assert_eq!(
            fields(rows(serde_json::Value::Array(too_many.collect()))),
            ["z"]
        );
    }

    #[test]
    fn a_50000_seat_map_is_12500_bytes_before_base64() {
        let map = encode_status_map(std::iter::repeat_n(SeatStatus::Sold, 50_000));
        assert_eq!(map.len(), 16_667);
    }

    proptest! {
        #[test]
        fn status_maps_round_trip(codes in proptest::collection::vec(0u8..4, 0..200)) {
            let statuses: Vec<SeatStatus> = codes.iter().map(|&c| SeatStatus::from_code(c)).collect();
            let map = encode_status_map(statuses.iter().copied());
            prop_assert_eq!(decode_status_map(&map, statuses.len()), Some(statuses.clone()));
            prop_assert_eq!(decode_status_map(&map, statuses.len() + 5), None);
        }

        /// Setting one seat changes that seat only, and what is read back, in place or
        /// through the map, is what was set.
        #[test]
        fn a_packed_seat_is_set_alone(
            codes in proptest::collection::vec(0u8..4, 1..200),
            pick in 0usize..200,
            code in 0u8..4,
        ) {
            let statuses: Vec<SeatStatus> = codes.iter().map(|&c| SeatStatus::from_code(c)).collect();
            let index = (pick % statuses.len()) as i32;
            let mut packed = PackedStatus::pack(statuses.iter().copied());
            prop_assert!(packed.set(index, SeatStatus::from_code(code)));
            let mut expected = statuses.clone();
            expected[index as usize] = SeatStatus::from_code(code);
            prop_assert_eq!(packed.statuses().collect::<Vec<_>>(), expected.clone());
            prop_assert_eq!(status_in(packed.as_bytes(), statuses.len(), index), Some(expected[index as usize]));
            prop_assert_eq!(decode_status_map(&packed.to_map(), statuses.len()), Some(expected));
            prop_assert!(!packed.set(statuses.len() as i32, SeatStatus::Held));
            prop_assert!(!packed.set(-1, SeatStatus::Held));
            prop_assert_eq!(packed.get(statuses.len() as i32), None);
        }

        /// Whatever the rows, the runs draw exactly the seats, in index order, and a run
        /// never spans a gap.
        #[test]
        fn runs_draw_exactly_the_seats(
            shapes in proptest::collection::vec((1i32..40, proptest::collection::vec(1i32..40, 0..3)), 1..12)
        ) {
            let spec: Vec<serde_json::Value> = shapes.iter().enumerate().map(|(i, (seats, gaps))| {
                let gaps: Vec<i32> = gaps.iter().filter(|g| **g < *seats).copied().collect();
                serde_json::json!({"row": format!("R{i}"), "seats": seats, "gaps_after": gaps})
            }).collect();
            let seats = rows(serde_json::Value::Array(spec)).parse("seats").expect("valid");
            let runs = layout_runs(&seats);
            let expected: Vec<_> = (0_i32..).zip(&seats)
                .map(|(i, s)| (i, s.section.clone(), s.row.clone(), s.number, s.x, s.y))
                .collect();
            prop_assert_eq!(drawn(&runs), expected);
            for run in &runs {
                let first = &seats[run.first_seat as usize];
                let last = &seats[(run.first_seat + run.count - 1) as usize];
                prop_assert_eq!(last.position - first.position, run.count - 1);
            }
        }
    }
}

//! `POST /v1/checkin`: what a door's scanner sends and the verdict it gets, shared by the
//! ledger (which redeems) and the edge (which verifies before forwarding).
//!
//! A scan names the ticket's signed code, the gate, and a `nonce` the scanner makes per
//! scan: the same nonce (from the same credential) replays the first verdict. An offline
//! scanner that already let someone in uploads the scan later with `scanned_at` and
//! `force: true`: it is recorded as it happened, `duplicate_offline` if the ticket had
//! entered before.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::single_line;
use crate::problem::FieldError;
use crate::tickets::{CODE_CHARS, GATE_NAME_CHARS_MAX};
use crate::{ShowId, TicketId};

/// Longest text a scanner may send as the code it read.
pub const CODE_READ_CHARS_MAX: usize = 400;
/// Longest nonce: a UUID or a counter with a device prefix fits.
pub const NONCE_CHARS_MAX: usize = 64;
/// How far in the future a scanner's clock may be.
pub const SCANNED_AT_AHEAD_MAX: Duration = Duration::minutes(5);
/// How old an offline scan may be when it is uploaded.
pub const SCANNED_AT_AGE_MAX: Duration = Duration::days(30);
/// The header a gate credential is presented in (`Authorization: Bearer <credential>`).
pub const AUTHORIZATION_HEADER: &str = "authorization";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The ticket's signed code, as its QR code holds it (whatever was read: a code that is
    /// not one gets the verdict `invalid`).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 400))]
    pub code: String,
    /// The gate scanning: must be the credential's.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 32,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub gate: String,
    /// Unique per scan from one credential: a retry with the same nonce gets the first
    /// verdict.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._:-]+$")
    )]
    pub nonce: String,
    /// When the scan happened (default: when it arrives). Within the last 30 days, at most
    /// 5 minutes ahead.
    #[serde(default)]
    pub scanned_at: Option<DateTime<Utc>>,
    /// An offline scanner already let the holder in: record the entry as of `scanned_at`.
    #[serde(default)]
    pub force: bool,
    /// The show this door admits to, if it admits to one: a ticket of another show of the
    /// event is `wrong_show` (the code names its show).
    #[serde(default)]
    pub show_id: Option<ShowId>,
}

/// A checked scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub code: String,
    pub gate: String,
    pub nonce: String,
    pub scanned_at: DateTime<Utc>,
    /// The holder is already in (an offline scanner's upload).
    pub offline_entry: bool,
    /// The show the door admits to (`None`: any show of the event).
    pub show_id: Option<ShowId>,
}

impl Scan {
    /// Whether a code naming `show_id` is for another show than this door's.
    pub fn wrong_show(&self, show_id: ShowId) -> bool {
        self.show_id.is_some_and(|door| door != show_id)
    }
}

impl CheckinRequest {
    /// The scan, or every field that breaks a rule, judged at `now`.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<Scan, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(1..=CODE_READ_CHARS_MAX).contains(&self.code.chars().count()) {
            errors.push(FieldError::new(
                "code",
                format!("what the scanner read, 1 to {CODE_READ_CHARS_MAX} characters (a code is {CODE_CHARS})"),
            ));
        }
        let gate = single_line("gate", &self.gate, GATE_NAME_CHARS_MAX)
            .map_err(|e| errors.push(e))
            .ok();
        let nonce_ok = (1..=NONCE_CHARS_MAX).contains(&self.nonce.len())
            && self
                .nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b));
        if !nonce_ok {
            errors.push(FieldError::new(
                "nonce",
                format!("1 to {NONCE_CHARS_MAX} of A-Z a-z 0-9 . : _ -"),
            ));
        }
        let scanned_at = self.scanned_at.unwrap_or(now);
        if scanned_at > now + SCANNED_AT_AHEAD_MAX || scanned_at < now - SCANNED_AT_AGE_MAX {
            errors.push(FieldError::new(
                "scanned_at",
                "within the last 30 days and at most 5 minutes ahead",
            ));
        }
        if self.force && self.scanned_at.is_none() {
            errors.push(FieldError::new(
                "scanned_at",
                "an offline entry (`force`) says when it happened",
            ));
        }
        match gate {
            Some(gate) if errors.is_empty() => Ok(Scan {
                code: self.code.clone(),
                gate,
                nonce: self.nonce.clone(),
                scanned_at,
                offline_entry: self.force,
                show_id: self.show_id,
            }),
            _ => Err(errors),
        }
    }
}

/// What the door is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScanResult {
    /// Let them in: the ticket is checked in now.
    Ok,
    /// The ticket entered before (`checked_in_at`, `gate` say when and where).
    AlreadyRedeemed,
    /// An offline entry for a ticket that had entered before: recorded, reported.
    DuplicateOffline,
    /// The ticket was cancelled.
    Void,
    /// The ticket's code is in the event's revoked set (its ticket voided, or the event
    /// cancelled): the edge's answer from its cache, before the ledger says `void`.
    Revoked,
    /// A valid code of another event.
    WrongEvent,
    /// A valid code of this event for another show than the door's (`show_id` of the scan).
    WrongShow,
    /// Not a code the event's keys signed (forged, damaged, or not a ticket).
    Invalid,
}

impl ScanResult {
    /// 201 for an entry, 409 for every refusal (the verdict body says which).
    pub fn status(self) -> u16 {
        match self {
            Self::Ok => 201,
            _ => 409,
        }
    }
}

/// `POST /v1/checkin`'s answer for a scan (problem+json is for requests that are not
/// scans: a missing credential, a malformed body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    pub result: ScanResult,
    /// The ticket, once its code verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<TicketId>,
    /// The ticket's seat (its index in the zone's layout), for assigned seating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat_index: Option<i32>,
    /// `ok`: this entry; `already_redeemed`, `duplicate_offline`: the first entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// `edge` when an edge node answered without the ledger (a code it could judge alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

impl Verdict {
    /// A verdict without a ticket (the code did not verify).
    pub fn refused(result: ScanResult) -> Self {
        Self {
            result,
            ticket_id: None,
            seat_index: None,
            checked_in_at: None,
            gate: None,
            served_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 20, 0, 0)
            .single()
            .expect("t")
    }

    fn request(json: serde_json::Value) -> CheckinRequest {
        serde_json::from_value(json).expect("shape")
    }

    #[test]
    fn a_scan_is_parsed_once_with_its_time() {
        let scan =
            request(serde_json::json!({"code": "c", "gate": "North 1", "nonce": "dev-1:42"}))
                .parse(now())
                .expect("valid");
        assert_eq!(scan.scanned_at, now());
        assert!(!scan.offline_entry);
    }

    #[test]
    fn broken_fields_are_named() {
        let fields = |json| -> Vec<String> {
            request(json)
                .parse(now())
                .expect_err("invalid")
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(
            fields(serde_json::json!({"code": "", "gate": " ", "nonce": "a b"})),
            ["code", "gate", "nonce"]
        );
        assert_eq!(
            fields(serde_json::json!({"code": "c", "gate": "g", "nonce": "n", "force": true})),
            ["scanned_at"]
        );
        assert_eq!(
            fields(serde_json::json!({"code": "c", "gate": "g", "nonce": "n",
                                      "scanned_at": "2030-01-01T20:06:00Z"})),
            ["scanned_at"]
        );
        assert_eq!(
            fields(serde_json::json!({"code": "c", "gate": "g".repeat(33), "nonce": "n"})),
            ["gate"]
        );
    }
}

//! The front door (DESIGN.md "The front door"): an event's queue for its on-sale — the
//! organizer's settings, the state every edge caches (`serving`: positions up to it are let
//! in), what a person in line is told, and the admission pass a hold must carry. Edge and
//! ledger answer with these same rules, so a poll gives the same answer wherever it lands.
//! The signed tokens themselves live in [`tokens`].

pub mod tokens;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use tokens::{
    AdmissionPass, QueueKey, QueueKeyError, QueueKeys, QueueTicket, QUEUE_SECRET_BYTES_MIN,
};

use crate::holds::Rejection;
use crate::{ErrorCode, EventId, FieldError, Problem};

/// The header a person in line presents their queue ticket in.
pub const TICKET_HEADER: &str = "tessera-queue-ticket";
/// The header a hold carries its admission pass in.
pub const PASS_HEADER: &str = "tessera-pass";
/// Fastest admission rate an organizer may set (people per minute).
pub const ADMIT_PER_MINUTE_MAX: i32 = 100_000;
/// Longest buyer session a pass may grant (minutes).
pub const SESSION_MINUTES_MAX: i32 = 240;
/// Holds one admission pass may place: one buyer session, not a crowd sharing a pass. The
/// event's per-customer limit bounds the tickets on top of this.
pub const HOLDS_PER_PASS_MAX: i64 = 10;
/// Bounds of the polling interval suggested to a person in line (seconds): often enough
/// to move on soon after admission, rarely enough that a crowd's polls stay cheap.
pub const POLL_SECONDS_MIN: i64 = 2;
pub const POLL_SECONDS_MAX: i64 = 30;

/// `PUT /admin/v1/events/{event_id}/queue` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueueSettingsRequest {
    /// Whether holds need an admission pass.
    pub enabled: bool,
    /// People let in per minute, 1 to 100,000.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub admit_per_minute: i64,
    /// How long an admitted buyer's pass lasts, 1 to 240 minutes.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 240))]
    pub session_minutes: i64,
    /// When admission starts; people may join before (in join order). Absent: at once.
    #[serde(default)]
    pub opens_at: Option<DateTime<Utc>>,
}

/// Settings that passed [`QueueSettingsRequest::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    pub enabled: bool,
    pub admit_per_minute: i32,
    pub session_minutes: i32,
    pub opens_at: Option<DateTime<Utc>>,
}

impl QueueSettingsRequest {
    pub fn parse(&self) -> Result<QueueSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let admit_per_minute = bounded(
            "admit_per_minute",
            self.admit_per_minute,
            ADMIT_PER_MINUTE_MAX,
            &mut errors,
        );
        let session_minutes = bounded(
            "session_minutes",
            self.session_minutes,
            SESSION_MINUTES_MAX,
            &mut errors,
        );
        let opens_at = self
            .opens_at
            .map(|at| crate::fields::instant("opens_at", at))
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(QueueSettings {
            enabled: self.enabled,
            admit_per_minute,
            session_minutes,
            opens_at,
        })
    }
}

fn bounded(field: &str, value: i64, max: i32, errors: &mut Vec<FieldError>) -> i32 {
    match i32::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => v,
        _ => {
            errors.push(FieldError::new(field, format!("must be 1 to {max}")));
            1
        }
    }
}

/// An event's queue as its public detail shows it (absent when the queue is off), so a
/// storefront knows to send buyers to the queue first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueView {
    pub admit_per_minute: i32,
    pub session_minutes: i32,
    pub opens_at: Option<DateTime<Utc>>,
}

/// An event's queue and how far it has let people in: what the ledger keeps, what
/// `GET /v1/events/{id}/queue/state` answers and every edge caches (`serving` moving on by
/// `queue` messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueState {
    pub event_id: EventId,
    pub enabled: bool,
    pub admit_per_minute: i32,
    pub session_minutes: i32,
    pub opens_at: Option<DateTime<Utc>>,
    /// People who joined so far (the last position handed out).
    pub joined: i64,
    /// Positions up to this one are let in.
    pub serving: i64,
    /// Grows with every change of `serving` or the settings.
    pub version: i64,
}

/// Where a person in line stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueueStep {
    /// Not yet let in.
    Waiting,
    /// Let in: `pass` admits their holds.
    Admitted,
    /// Let in longer ago than a session lasts: the place is spent.
    Expired,
}

/// An admission pass as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PassView {
    /// Send as `Tessera-Pass` with every hold for this event.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The answer to joining or polling the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStatus {
    pub event_id: EventId,
    /// The signed queue ticket: send it as `Tessera-Queue-Ticket` to poll or rejoin.
    pub ticket: String,
    pub position: i64,
    pub joined_at: DateTime<Utc>,
    pub serving: i64,
    /// People in line before this one.
    pub ahead: i64,
    pub state: QueueStep,
    /// At the configured rate (and the opening time), how long until admission.
    pub estimated_wait_seconds: i64,
    /// When to ask again; absent once the wait is over.
    pub poll_after_seconds: Option<i64>,
    /// Present once admitted.
    pub pass: Option<PassView>,
}

impl QueueState {
    /// What the holder of `ticket` (signed as `ticket_token`) is told at `now`; an
    /// admitted holder gets a pass signed with `keys`.
    ///
    /// A pass lasts `session_minutes` from when `serving` reached the position, estimated
    /// from how far it has moved past it at the configured rate; so polling again never
    /// stretches a session, and a place let in more than a session ago is `expired`.
    pub fn status(
        &self,
        keys: &QueueKeys,
        ticket: &QueueTicket,
        ticket_token: String,
        now: DateTime<Utc>,
    ) -> QueueStatus {
        let position = i64::try_from(ticket.position).unwrap_or(i64::MAX);
        let rate = i64::from(self.admit_per_minute.max(1));
        let mut status = QueueStatus {
            event_id: self.event_id,
            ticket: ticket_token,
            position,
            joined_at: ticket.joined_at,
            serving: self.serving,
            ahead: (position - self.serving - 1).max(0),
            state: QueueStep::Waiting,
            estimated_wait_seconds: 0,
            poll_after_seconds: None,
            pass: None,
        };
        if position > self.serving {
            let until_open = self
                .opens_at
                .map_or(0, |at| (at - now).num_seconds().max(0));
            // Whole seconds, rounded up: "0 s" only once admitted.
            let wait = until_open + ((position - self.serving) * 60 + rate - 1) / rate;
            status.estimated_wait_seconds = wait;
            status.poll_after_seconds = Some((wait / 4).clamp(POLL_SECONDS_MIN, POLL_SECONDS_MAX));
            return status;
        }
        let since_admitted = Duration::seconds((self.serving - position) * 60 / rate);
        let expires_at = now - since_admitted + Duration::minutes(self.session_minutes.into());
        if expires_at <= now {
            status.state = QueueStep::Expired;
            return status;
        }
        let pass = AdmissionPass {
            event_id: self.event_id,
            position: ticket.position,
            expires_at: whole_seconds(expires_at),
            pass_id: pass_id(self.event_id, ticket.position),
        };
        status.state = QueueStep::Admitted;
        status.pass = Some(PassView {
            token: keys.sign_pass(&pass),
            expires_at: pass.expires_at,
        });
        status
    }
}

/// A token carries whole seconds.
fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// The one pass id of a place in line: every pass issued to it (each poll signs one) is the
/// same buyer session, so the holds-per-pass bound counts them together.
pub fn pass_id(event_id: EventId, position: u64) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"tessera pass id v1\0")
        .chain_update(event_id.as_uuid().as_bytes())
        .chain_update(position.to_be_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(id).into_uuid()
}

/// The pass a hold for `event_id` presents (`token`, from [`PASS_HEADER`]), checked at
/// `now`: signed by this deployment, for this event, unexpired. Else `pass_required`,
/// saying why.
pub fn admit(
    keys: &QueueKeys,
    token: Option<&str>,
    event_id: EventId,
    now: DateTime<Utc>,
) -> Result<AdmissionPass, Rejection> {
    let refuse = |detail: &str| Rejection::new(ErrorCode::PassRequired, detail);
    let token = token.ok_or_else(|| {
        refuse("this on-sale is queued: join the queue and send its pass as Tessera-Pass")
    })?;
    let pass = keys
        .verify_pass(token.trim())
        .map_err(|_| refuse("the pass is not one this deployment signed"))?;
    if pass.event_id != event_id {
        return Err(refuse("the pass is for another event"));
    }
    if pass.expires_at <= now {
        return Err(refuse(&format!(
            "the pass expired at {}: join the queue again",
            pass.expires_at.to_rfc3339()
        )));
    }
    Ok(pass)
}

/// The queue ticket a poll presents, for `event_id`; else `queue_ticket_invalid`.
pub fn ticket(
    keys: &QueueKeys,
    token: Option<&str>,
    event_id: EventId,
) -> Result<QueueTicket, Rejection> {
    let refuse = |detail: &str| Rejection::new(ErrorCode::QueueTicketInvalid, detail);
    let token = token.ok_or_else(missing_ticket)?;
    let ticket = keys
        .verify_ticket(token.trim())
        .map_err(|_| refuse("the ticket is not one this deployment signed"))?;
    if ticket.event_id != event_id {
        return Err(refuse("the ticket is for another event"));
    }
    Ok(ticket)
}

/// The answer to a poll without a ticket (given before anything is looked up).
pub fn missing_ticket() -> Rejection {
    Rejection::new(
        ErrorCode::QueueTicketInvalid,
        "send the queue ticket as Tessera-Queue-Ticket",
    )
}

/// The answer when an event's queue is off.
pub fn queue_off() -> Problem {
    Problem::new(ErrorCode::QueueOff).with_detail("this event has no queue: hold directly")
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn keys() -> QueueKeys {
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([3u8; 32]);
        QueueKeys {
            current: QueueKey::parse(&format!("1:{secret}")).expect("key"),
            previous: None,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("t")
    }

    fn state(serving: i64) -> QueueState {
        QueueState {
            event_id: EventId(Uuid::from_u128(7)),
            enabled: true,
            admit_per_minute: 60,
            session_minutes: 10,
            opens_at: None,
            joined: 10_000,
            serving,
            version: 1,
        }
    }

    fn ticket(position: u64) -> QueueTicket {
        QueueTicket {
            event_id: EventId(Uuid::from_u128(7)),
            position,
            joined_at: at(1_900_000_000),
        }
    }

    #[test]
    fn waiting_counts_the_people_ahead_and_the_time_at_the_rate() {
        let status = state(100).status(&keys(), &ticket(160), "t".into(), at(2_000_000_000));
        assert_eq!(status.state, QueueStep::Waiting);
        assert_eq!(status.ahead, 59);
        assert_eq!(
            status.estimated_wait_seconds, 60,
            "60 places at 60 a minute"
        );
        assert_eq!(status.poll_after_seconds, Some(15));
        assert!(status.pass.is_none());
        // Before opening, the time until then is added.
        let mut later = state(0);
        later.opens_at = Some(at(2_000_000_300));
        let status = later.status(&keys(), &ticket(1), "t".into(), at(2_000_000_000));
        assert_eq!(status.estimated_wait_seconds, 301);
        assert_eq!(status.poll_after_seconds, Some(POLL_SECONDS_MAX));
    }

    #[test]
    fn an_admitted_place_gets_a_pass_for_this_event_whose_session_polling_cannot_stretch() {
        let keys = keys();
        let now = at(2_000_000_000);
        let status = state(160).status(&keys, &ticket(160), "t".into(), now);
        assert_eq!(status.state, QueueStep::Admitted);
        let pass = status.pass.expect("a pass");
        assert_eq!(pass.expires_at, now + Duration::minutes(10));
        let admitted = admit(&keys, Some(&pass.token), EventId(Uuid::from_u128(7)), now)
            .expect("the pass admits");
        assert_eq!(admitted.pass_id, pass_id(admitted.event_id, 160));
        // 300 more let in at 60 a minute: admitted five minutes ago, five minutes left,
        // however often the holder polls.
        let later = state(460).status(&keys, &ticket(160), "t".into(), now);
        assert_eq!(
            later.pass.expect("pass").expires_at,
            now + Duration::minutes(5)
        );
        let spent = state(760).status(&keys, &ticket(160), "t".into(), now);
        assert_eq!(spent.state, QueueStep::Expired);
        assert!(spent.pass.is_none());
    }

    #[test]
    fn a_pass_is_refused_when_missing_forged_foreign_or_expired() {
        let keys = keys();
        let now = at(2_000_000_000);
        let event = EventId(Uuid::from_u128(7));
        let pass = |event_id, expires_at| {
            keys.sign_pass(&AdmissionPass {
                event_id,
                position: 1,
                expires_at,
                pass_id: Uuid::from_u128(1),
            })
        };
        let refused = |token: Option<&str>| {
            let problem = admit(&keys, token, event, now).expect_err("refused");
            assert_eq!(problem.code, ErrorCode::PassRequired);
            problem.detail
        };
        assert!(refused(None).contains("join the queue"));
        assert!(refused(Some("nonsense")).contains("signed"));
        let foreign = pass(EventId(Uuid::from_u128(8)), at(2_000_000_600));
        assert!(refused(Some(&foreign)).contains("another event"));
        let expired = pass(event, now);
        assert!(refused(Some(&expired)).contains("expired"));
        assert!(admit(&keys, Some(&pass(event, at(2_000_000_001))), event, now).is_ok());
    }

    #[test]
    fn settings_are_bounded() {
        let request = |admit_per_minute, session_minutes| QueueSettingsRequest {
            enabled: true,
            admit_per_minute,
            session_minutes,
            opens_at: None,
        };
        assert!(request(1, 1).parse().is_ok());
        assert!(request(100_000, 240).parse().is_ok());
        let errors = request(0, 241).parse().expect_err("both out of range");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["admit_per_minute", "session_minutes"]);
        assert!(request(i64::MAX, 10).parse().is_err());
    }
}

//! The queue's signed tokens (DESIGN.md "The front door"): a **queue ticket** (a place
//! in an event's line) and an **admission pass** (let in, for a while). Both are signed with
//! HMAC-SHA256 under a secret the edges and the ledger share (`queue_key` / `QUEUE_KEY`),
//! so an edge answers "where am I in line" and checks a pass without the ledger, and the
//! ledger checks the same pass again. Each names the key that signed it (a one-byte id), so
//! the key rotates without dropping anyone's place: the previous key still verifies.
//!
//! Layout (then URL-safe base64 without padding):
//!
//! | bytes | ticket | pass |
//! | --- | --- | --- |
//! | 0 | version ([`TOKEN_VERSION`]) | version |
//! | 1 | kind `T` | kind `P` |
//! | 2 | key id | key id |
//! | 3..19 | event id | event id |
//! | 19..27 | position (u64, big-endian) | position |
//! | 27..35 | joined at (Unix seconds, i64) | expires at (Unix seconds) |
//! | 35..51 | — | pass id (one buyer session) |
//! | then 32 | HMAC-SHA256 over [`QUEUE_DOMAIN`] and the bytes before | the same |
//!
//! A ticket is 90 characters, a pass 111. Anything malformed, of another kind or key, or
//! with a MAC that does not match (compared in constant time) is [`Forged`].

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::tickets::Forged;
use crate::EventId;

/// The token layout this version writes and reads.
pub const TOKEN_VERSION: u8 = 1;
/// Separates these MACs from any other use of the key.
pub const QUEUE_DOMAIN: &[u8] = b"tessera queue v1\0";
/// Shortest secret accepted (bytes, after decoding): HMAC-SHA256's output size.
pub const QUEUE_SECRET_BYTES_MIN: usize = 32;

const TICKET_KIND: u8 = b'T';
const PASS_KIND: u8 = b'P';
const MAC_BYTES: usize = 32;
const TICKET_BYTES: usize = 35;
const PASS_BYTES: usize = 51;

/// A place in an event's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueTicket {
    pub event_id: EventId,
    pub position: u64,
    pub joined_at: DateTime<Utc>,
}

/// Admission for one buyer session of an event, until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionPass {
    pub event_id: EventId,
    pub position: u64,
    pub expires_at: DateTime<Utc>,
    pub pass_id: Uuid,
}

/// One signing key: its id and secret.
#[derive(Clone)]
pub struct QueueKey {
    pub key_id: u8,
    secret: Vec<u8>,
}

/// Why a `queue_key` setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueKeyError {
    #[error("expected `<key id 0-255>:<secret, URL-safe base64>`")]
    Shape,
    #[error("the secret must be at least {QUEUE_SECRET_BYTES_MIN} bytes")]
    Short,
}

impl QueueKey {
    /// `"<id>:<base64url secret>"`, as the setting holds it.
    pub fn parse(setting: &str) -> Result<Self, QueueKeyError> {
        let (id, secret) = setting.trim().split_once(':').ok_or(QueueKeyError::Shape)?;
        let key_id = id.parse::<u8>().map_err(|_| QueueKeyError::Shape)?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| QueueKeyError::Shape)?;
        if secret.len() < QUEUE_SECRET_BYTES_MIN {
            return Err(QueueKeyError::Short);
        }
        Ok(Self { key_id, secret })
    }

    fn mac(&self, signed: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(QUEUE_DOMAIN);
        mac.update(signed);
        mac
    }
}

// Never print a secret.
impl std::fmt::Debug for QueueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The keys in use: the current one signs; it and the previous one verify.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    pub current: QueueKey,
    pub previous: Option<QueueKey>,
}

impl QueueKeys {
    pub fn sign_ticket(&self, ticket: &QueueTicket) -> String {
        let mut bytes = self.head(TICKET_KIND, ticket.event_id, ticket.position);
        bytes.extend_from_slice(&ticket.joined_at.timestamp().to_be_bytes());
        self.seal(bytes)
    }

    pub fn sign_pass(&self, pass: &AdmissionPass) -> String {
        let mut bytes = self.head(PASS_KIND, pass.event_id, pass.position);
        bytes.extend_from_slice(&pass.expires_at.timestamp().to_be_bytes());
        bytes.extend_from_slice(pass.pass_id.as_bytes());
        self.seal(bytes)
    }

    pub fn verify_ticket(&self, token: &str) -> Result<QueueTicket, Forged> {
        let signed = self.open(token, TICKET_KIND, TICKET_BYTES)?;
        Ok(QueueTicket {
            event_id: event(&signed)?,
            position: position(&signed)?,
            joined_at: instant(&signed)?,
        })
    }

    /// A pass this deployment signed (its expiry is the caller's to judge).
    pub fn verify_pass(&self, token: &str) -> Result<AdmissionPass, Forged> {
        let signed = self.open(token, PASS_KIND, PASS_BYTES)?;
        Ok(AdmissionPass {
            event_id: event(&signed)?,
            position: position(&signed)?,
            expires_at: instant(&signed)?,
            pass_id: Uuid::from_slice(&signed[35..51]).map_err(|_| Forged)?,
        })
    }

    fn head(&self, kind: u8, event_id: EventId, position: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(PASS_BYTES + MAC_BYTES);
        bytes.extend_from_slice(&[TOKEN_VERSION, kind, self.current.key_id]);
        bytes.extend_from_slice(event_id.as_uuid().as_bytes());
        bytes.extend_from_slice(&position.to_be_bytes());
        bytes
    }

    fn seal(&self, mut bytes: Vec<u8>) -> String {
        let mac = self.current.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&mac);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The signed bytes of a token of `kind` and `len`, its MAC checked with the key it
    /// names.
    fn open(&self, token: &str, kind: u8, len: usize) -> Result<Vec<u8>, Forged> {
        if token.len() != (4 * (len + MAC_BYTES)).div_ceil(3) {
            return Err(Forged);
        }
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| Forged)?;
        if bytes.len() != len + MAC_BYTES || bytes[0] != TOKEN_VERSION || bytes[1] != kind {
            return Err(Forged);
        }
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.key_id == bytes[2])
            .ok_or(Forged)?;
        let mac = bytes.split_off(len);
        key.mac(&bytes).verify_slice(&mac).map_err(|_| Forged)?;
        Ok(bytes)
    }
}

fn event(signed: &[u8]) -> Result<EventId, Forged> {
    Uuid::from_slice(&signed[3..19])
        .map(EventId)
        .map_err(|_| Forged)
}

fn position(signed: &[u8]) -> Result<u64, Forged> {
    Ok(u64::from_be_bytes(
        signed[19..27].try_into().map_err(|_| Forged)?,
    ))
}

fn instant(signed: &[u8]) -> Result<DateTime<Utc>, Forged> {
    let seconds = i64::from_be_bytes(signed[27..35].try_into().map_err(|_| Forged)?);
    DateTime::from_timestamp(seconds, 0).ok_or(Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8, fill: u8) -> QueueKey {
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([fill; 32]);
        QueueKey::parse(&format!("{id}:{secret}")).expect("a valid key")
    }

    fn keys(current: QueueKey, previous: Option<QueueKey>) -> QueueKeys {
        QueueKeys { current, previous }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("t")
    }

    #[test]
    fn tickets_and_passes_round_trip_compactly_and_url_safe() {
        let keys = keys(key(1, 7), None);
        let ticket = QueueTicket {
            event_id: EventId(Uuid::from_u128(5)),
            position: 100_042,
            joined_at: at(2_000_000_000),
        };
        let signed = keys.sign_ticket(&ticket);
        assert_eq!(signed.len(), 90);
        assert!(signed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(keys.verify_ticket(&signed), Ok(ticket));
        let pass = AdmissionPass {
            event_id: ticket.event_id,
            position: ticket.position,
            expires_at: at(2_000_000_600),
            pass_id: Uuid::from_u128(9),
        };
        let signed_pass = keys.sign_pass(&pass);
        assert_eq!(signed_pass.len(), 111);
        assert_eq!(keys.verify_pass(&signed_pass), Ok(pass));
        // A ticket is no pass, and the reverse.
        assert_eq!(keys.verify_pass(&signed), Err(Forged));
        assert_eq!(keys.verify_ticket(&signed_pass), Err(Forged));
    }

    #[test]
    fn a_changed_byte_another_key_or_a_retired_key_is_forged() {
        let old = keys(key(1, 7), None);
        let ticket = QueueTicket {
            event_id: EventId(Uuid::from_u128(5)),
            position: 3,
            joined_at: at(2_000_000_000),
        };
        let signed = old.sign_ticket(&ticket);
        for at in [10, 40, 85] {
            let mut bent = signed.clone().into_bytes();
            bent[at] = if bent[at] == b'A' { b'B' } else { b'A' };
            let bent = String::from_utf8(bent).expect("ascii");
            assert_eq!(old.verify_ticket(&bent), Err(Forged), "byte {at}");
        }
        // Rotated: the new key signs, the previous still verifies places already given.
        let rotated = keys(key(2, 8), Some(key(1, 7)));
        assert_eq!(rotated.verify_ticket(&signed), Ok(ticket));
        assert_eq!(
            rotated.verify_ticket(&rotated.sign_ticket(&ticket)),
            Ok(ticket)
        );
        // Retired, or a key with the same id but another secret: forged.
        assert_eq!(keys(key(2, 8), None).verify_ticket(&signed), Err(Forged));
        assert_eq!(keys(key(1, 9), None).verify_ticket(&signed), Err(Forged));
        assert_eq!(old.verify_ticket(""), Err(Forged));
        assert_eq!(old.verify_ticket(&"A".repeat(90)), Err(Forged));
    }

    #[test]
    fn a_key_setting_names_its_id_and_a_long_enough_secret() {
        assert_eq!(
            QueueKey::parse("x").map(|k| k.key_id),
            Err(QueueKeyError::Shape)
        );
        assert_eq!(
            QueueKey::parse("300:AAAA").map(|k| k.key_id),
            Err(QueueKeyError::Shape)
        );
        assert_eq!(
            QueueKey::parse("1:AAAA").map(|k| k.key_id),
            Err(QueueKeyError::Short)
        );
        assert_eq!(format!("{:?}", key(4, 1)), "QueueKey { key_id: 4, .. }");
    }
}

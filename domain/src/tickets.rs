//! Signed ticket codes and gate credentials (DESIGN.md, "The ticket's life after the
//! sale"; invariant 10). The ledger signs both with the event's Ed25519 key; an edge, the
//! ledger itself and an offline scanner verify them with the event's public keys alone.
//!
//! A **ticket code** is URL-safe base64 (no padding) of 115 bytes, 154 characters (a QR
//! code of version 7 at level M holds it):
//!
//! | bytes | what |
//! | --- | --- |
//! | 0 | format version, [`CODE_VERSION`] |
//! | 1..3 | key id (u16, big-endian): which of the event's keys signed it |
//! | 3..19 | ticket id |
//! | 19..35 | event id |
//! | 35..51 | show id |
//! | 51..115 | Ed25519 signature over [`TICKET_DOMAIN`] followed by bytes 0..51 |
//!
//! A **gate credential** (a staff device's token) is the same shape with its own domain,
//! so a ticket code can never pass as a credential or the reverse: version, key id,
//! credential id, tenant, event, expiry (Unix seconds, i64 big-endian), the gate's name
//! (one length byte, then UTF-8), then the signature over [`GATE_DOMAIN`] and the rest.
//!
//! Verification is [`verify_code`] / [`verify_credential`]: unknown format, unknown key id
//! or a bad signature is [`Forged`]; nothing else is trusted from the bytes before it.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{EventId, ShowId, TenantId, TicketId};

/// The ticket code layout this version writes and reads.
pub const CODE_VERSION: u8 = 1;
/// The gate credential layout this version writes and reads.
pub const CREDENTIAL_VERSION: u8 = 1;
/// What a ticket code's signature covers before its fields: a signature made for anything
/// else (a credential, another protocol) never verifies as a ticket.
pub const TICKET_DOMAIN: &[u8] = b"tessera ticket code v1\0";
/// The same for gate credentials.
pub const GATE_DOMAIN: &[u8] = b"tessera gate credential v1\0";
/// Bytes of a ticket code before its signature.
const CODE_CLAIM_BYTES: usize = 1 + 2 + 16 * 3;
const SIGNATURE_BYTES: usize = 64;
/// Bytes of a ticket code.
pub const CODE_BYTES: usize = CODE_CLAIM_BYTES + SIGNATURE_BYTES;
/// Characters of a ticket code (base64 of [`CODE_BYTES`], no padding): ≤ 200, for a QR code.
pub const CODE_CHARS: usize = (CODE_BYTES * 4).div_ceil(3);
/// Longest gate name, in characters…
pub const GATE_NAME_CHARS_MAX: usize = 32;
/// …so at most this many bytes of UTF-8 in a credential (its one length byte holds it).
pub const GATE_NAME_BYTES_MAX: usize = GATE_NAME_CHARS_MAX * 4;
/// Longest credential text accepted before decoding (a bound on work for any input).
pub const CREDENTIAL_CHARS_MAX: usize = 400;

/// Which of an event's keys signed a code or credential.
pub type KeyId = u16;

/// A ticket's state (invariant 9): `valid → checked_in` at most once; `void` once cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Valid,
    CheckedIn,
    Void,
}

impl TicketStatus {
    pub const ALL: [Self; 3] = [Self::Valid, Self::CheckedIn, Self::Void];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::CheckedIn => "checked_in",
            Self::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

crate::catalog::stored_as_text!(TicketStatus, "ticket status", |text| TicketStatus::parse(
    text
));

/// An event's signing key, as the ledger keeps it (private: never serialised).
pub struct EventSigningKey {
    pub key_id: KeyId,
    key: SigningKey,
}

impl EventSigningKey {
    /// A key from 32 secret random bytes (the ledger draws them from the OS's CSPRNG).
    pub fn from_seed(key_id: KeyId, seed: &[u8; 32]) -> Self {
        Self {
            key_id,
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The 32 secret bytes, to store (only in the ledger's database).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> CheckinKey {
        CheckinKey {
            key_id: self.key_id,
            public_key: encode(self.key.verifying_key().as_bytes()),
        }
    }

    /// The signed code of a ticket.
    pub fn sign_code(&self, claim: &TicketClaim) -> String {
        let mut bytes = Vec::with_capacity(CODE_BYTES);
        bytes.push(CODE_VERSION);
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(claim.ticket_id.0.as_bytes());
        bytes.extend_from_slice(claim.event_id.0.as_bytes());
        bytes.extend_from_slice(claim.show_id.0.as_bytes());
        let signature = self.key.sign(&signed_message(TICKET_DOMAIN, &bytes));
        bytes.extend_from_slice(&signature.to_bytes());
        encode(&bytes)
    }

    /// A signed gate credential.
    pub fn sign_credential(&self, credential: &GateCredential) -> Result<String, GateNameTooLong> {
        let gate = credential.gate.as_bytes();
        let gate_len = u8::try_from(gate.len())
            .ok()
            .filter(|&n| usize::from(n) <= GATE_NAME_BYTES_MAX)
            .ok_or(GateNameTooLong)?;
        let mut bytes = Vec::with_capacity(1 + 2 + 48 + 8 + 1 + gate.len() + SIGNATURE_BYTES);
        bytes.push(CREDENTIAL_VERSION);
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(credential.credential_id.as_bytes());
        bytes.extend_from_slice(credential.tenant_id.0.as_bytes());
        bytes.extend_from_slice(credential.event_id.0.as_bytes());
        bytes.extend_from_slice(&credential.expires_at.timestamp().to_be_bytes());
        bytes.push(gate_len);
        bytes.extend_from_slice(gate);
        let signature = self.key.sign(&signed_message(GATE_DOMAIN, &bytes));
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(encode(&bytes))
    }
}

/// A gate's name is longer than [`GATE_NAME_BYTES_MAX`] bytes (a caller that checked
/// [`GATE_NAME_CHARS_MAX`] never sees this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a gate name has at most {GATE_NAME_BYTES_MAX} bytes")]
pub struct GateNameTooLong;

/// One of an event's public keys, as the event's public detail and
/// `GET /v1/events/{id}/checkin-keys` list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckinKey {
    pub key_id: KeyId,
    /// The Ed25519 public key (32 bytes), URL-safe base64 without padding.
    pub public_key: String,
}

impl CheckinKey {
    /// A stored public key (32 bytes) as it is published.
    pub fn from_bytes(key_id: KeyId, public_key: &[u8]) -> Self {
        Self {
            key_id,
            public_key: encode(public_key),
        }
    }
}

/// `GET /v1/events/{event_id}/checkin-keys`: what verifies the event's codes, and which of
/// them are refused although they verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckinKeys {
    pub event_id: EventId,
    /// The event's unrevoked public keys, oldest first.
    pub keys: Vec<CheckinKey>,
    /// The event is cancelled: every code of it is refused (`revoked` then stays empty).
    #[serde(default)]
    pub cancelled: bool,
    /// How many of the event's tickets were ever voided; `revocation` messages carry the
    /// count after their change, so a holder of this document knows which it has applied.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub revocation_version: i64,
    /// The voided tickets of an event that is not cancelled, in ascending order.
    #[serde(default)]
    pub revoked: Vec<TicketId>,
}

/// What a `revocation` message does to a held [`CheckinKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoking {
    /// The tickets were added: store the document again.
    Applied,
    /// The document already has this change (or a later one).
    Stale,
    /// A change between the document and this message is missing (or the message lists
    /// no tickets): drop the document and refetch it.
    Refetch,
}

impl CheckinKeys {
    /// The entity tag: the key ids (keys are never changed, only added or revoked), the
    /// revocation count and whether the event is cancelled.
    pub fn etag(&self) -> String {
        let ids: Vec<String> = self.keys.iter().map(|k| k.key_id.to_string()).collect();
        let cancelled = if self.cancelled { "-c" } else { "" };
        format!(
            "\"k{}-r{}{cancelled}\"",
            ids.join("-"),
            self.revocation_version
        )
    }

    /// Whether a verified code of this event is refused anyway (its ticket voided, or the
    /// whole event cancelled).
    pub fn is_revoked(&self, ticket_id: TicketId) -> bool {
        self.cancelled || self.revoked.binary_search(&ticket_id).is_ok()
    }

    /// Applies a `revocation` message (`version` and its tickets) by version.
    pub fn revoke(&mut self, version: i64, ticket_ids: Option<&[TicketId]>) -> Revoking {
        if version <= self.revocation_version {
            return Revoking::Stale;
        }
        let Some(ids) = ticket_ids else {
            return Revoking::Refetch;
        };
        let follows = i64::try_from(ids.len())
            .ok()
            .and_then(|n| self.revocation_version.checked_add(n));
        if self.cancelled || follows != Some(version) {
            return Revoking::Refetch;
        }
        self.revoked.extend_from_slice(ids);
        self.revoked.sort_unstable();
        self.revoked.dedup();
        self.revocation_version = version;
        Revoking::Applied
    }
}

/// What a ticket code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketClaim {
    pub ticket_id: TicketId,
    pub event_id: EventId,
    pub show_id: ShowId,
}

/// What a gate credential says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCredential {
    pub credential_id: Uuid,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub expires_at: DateTime<Utc>,
    pub gate: String,
}

/// Not something the ledger signed: malformed, of an unknown format or key, or a signature
/// that does not verify. Deliberately one answer: a forger learns nothing from which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a code or credential the ledger signed")]
pub struct Forged;

/// The keys a verifier trusts: an event's public keys, by id.
pub struct Verifier {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl Verifier {
    /// The keys that parse (a key that does not is skipped: nothing it signed verifies).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a CheckinKey>) -> Self {
        let keys = keys
            .into_iter()
            .filter_map(|k| {
                let bytes: [u8; 32] = decode(&k.public_key)?.try_into().ok()?;
                Some((k.key_id, VerifyingKey::from_bytes(&bytes).ok()?))
            })
            .collect();
        Self { keys }
    }

    fn check(&self, domain: &[u8], signed: &[u8], signature: &[u8]) -> Result<(), Forged> {
        let key_id = KeyId::from_be_bytes([signed[1], signed[2]]);
        let key = self
            .keys
            .iter()
            .find(|(id, _)| *id == key_id)
            .map(|(_, key)| key)
            .ok_or(Forged)?;
        let signature = Signature::from_slice(signature).map_err(|_| Forged)?;
        // Strict: no malleable or small-order signatures (RFC 8032's checks and more).
        key.verify_strict(&signed_message(domain, signed), &signature)
            .map_err(|_| Forged)
    }

    /// The claim of a code this event's keys signed.
    pub fn verify_code(&self, code: &str) -> Result<TicketClaim, Forged> {
        if code.len() != CODE_CHARS {
            return Err(Forged);
        }
        let bytes = decode(code).ok_or(Forged)?;
        if bytes.len() != CODE_BYTES || bytes[0] != CODE_VERSION {
            return Err(Forged);
        }
        let (signed, signature) = bytes.split_at(CODE_CLAIM_BYTES);
        self.check(TICKET_DOMAIN, signed, signature)?;
        let id = |at: usize| Uuid::from_slice(&signed[at..at + 16]).map_err(|_| Forged);
        Ok(TicketClaim {
            ticket_id: TicketId(id(3)?),
            event_id: EventId(id(19)?),
            show_id: ShowId(id(35)?),
        })
    }

    /// The credential this event's keys signed (expiry is the caller's to judge).
    pub fn verify_credential(&self, token: &str) -> Result<GateCredential, Forged> {
        if token.len() > CREDENTIAL_CHARS_MAX {
            return Err(Forged);
        }
        let bytes = decode(token).ok_or(Forged)?;
        let fixed = 1 + 2 + 48 + 8 + 1;
        if bytes.len() < fixed + SIGNATURE_BYTES || bytes[0] != CREDENTIAL_VERSION {
            return Err(Forged);
        }
        let gate_len = usize::from(bytes[fixed - 1]);
        if bytes.len() != fixed + gate_len + SIGNATURE_BYTES {
            return Err(Forged);
        }
        let (signed, signature) = bytes.split_at(fixed + gate_len);
        self.check(GATE_DOMAIN, signed, signature)?;
        let id = |at: usize| Uuid::from_slice(&signed[at..at + 16]).map_err(|_| Forged);
        let seconds = i64::from_be_bytes(signed[51..59].try_into().map_err(|_| Forged)?);
        Ok(GateCredential {
            credential_id: id(3)?,
            tenant_id: TenantId(id(19)?),
            event_id: EventId(id(35)?),
            expires_at: DateTime::from_timestamp(seconds, 0).ok_or(Forged)?,
            gate: String::from_utf8(signed[fixed..].to_vec()).map_err(|_| Forged)?,
        })
    }
}

/// The event a code names, read before it is verified: only to choose the keys to verify
/// it with (nothing is trusted before [`Verifier::verify_code`]).
pub fn code_event(code: &str) -> Option<EventId> {
    if code.len() != CODE_CHARS {
        return None;
    }
    let bytes = decode(code)?;
    Some(EventId(Uuid::from_slice(bytes.get(19..35)?).ok()?))
}

/// The event a gate credential names, read before it is verified (as [`code_event`]).
pub fn credential_event(token: &str) -> Option<EventId> {
    if token.len() > CREDENTIAL_CHARS_MAX {
        return None;
    }
    let bytes = decode(token)?;
    Some(EventId(Uuid::from_slice(bytes.get(35..51)?).ok()?))
}

fn signed_message(domain: &[u8], bytes: &[u8]) -> Vec<u8> {
    [domain, bytes].concat()
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_with(version: i64, revoked: &[u128]) -> CheckinKeys {
        CheckinKeys {
            event_id: EventId(Uuid::from_u128(1)),
            keys: Vec::new(),
            cancelled: false,
            revocation_version: version,
            revoked: revoked
                .iter()
                .map(|&n| TicketId(Uuid::from_u128(n)))
                .collect(),
        }
    }

    /// The example in the README's "Ticket codes" (signed with a seed of 32 sevens).
    const README_CODE: &str = "AQABAZrOIVw-eoufECtsTY4KEQGaziAAAHAAgAAAAAAA4AEBms4gAABwAIAAAAAAAKABs0bN7Rhsz76ghvadEjl6zMc32ITpfzrcry2WLIxu2Yu-Q7-20_a72LdG0qjoqZYxSQ0sLXyOiaNOY2xq356wAA";

    #[test]
    fn the_readme_example_code_verifies_with_its_public_key() {
        let key = EventSigningKey::from_seed(1, &[7; 32]);
        assert_eq!(
            key.public().public_key,
            "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw"
        );
        let claim = Verifier::new([&key.public()])
            .verify_code(README_CODE)
            .expect("the README's code verifies");
        let id = |s: &str| Uuid::parse_str(s).expect("uuid");
        assert_eq!(
            claim,
            TicketClaim {
                ticket_id: TicketId(id("019ace21-5c3e-7a8b-9f10-2b6c4d8e0a11")),
                event_id: EventId(id("019ace20-0000-7000-8000-00000000e001")),
                show_id: ShowId(id("019ace20-0000-7000-8000-00000000a001")),
            }
        );
        assert_eq!(
            key.sign_code(&claim),
            README_CODE,
            "Ed25519 is deterministic"
        );
    }

    #[test]
    fn revocations_apply_in_version_order_and_gaps_ask_for_a_refetch() {
        let ticket = |n: u128| TicketId(Uuid::from_u128(n));
        let mut keys = keys_with(2, &[3, 7]);
        let before = keys.etag();
        assert_eq!(
            keys.revoke(4, Some(&[ticket(9), ticket(5)])),
            Revoking::Applied
        );
        assert_eq!(keys.revoked, [ticket(3), ticket(5), ticket(7), ticket(9)]);
        assert!(keys.is_revoked(ticket(5)) && !keys.is_revoked(ticket(4)));
        assert_ne!(keys.etag(), before, "a revocation changes the tag");
        // The same message again, or an older one: nothing moves.
        assert_eq!(
            keys.revoke(4, Some(&[ticket(9), ticket(5)])),
            Revoking::Stale
        );
        assert_eq!(keys.revoke(3, Some(&[ticket(1)])), Revoking::Stale);
        // A message after a missed one, or one without its list: refetch.
        assert_eq!(keys.revoke(6, Some(&[ticket(11)])), Revoking::Refetch);
        assert_eq!(keys.revoke(5, None), Revoking::Refetch);
        assert_eq!(keys.revocation_version, 4);
        let cancelled = CheckinKeys {
            cancelled: true,
            ..keys_with(0, &[])
        };
        assert!(cancelled.is_revoked(ticket(1)));
        assert_ne!(cancelled.etag(), keys_with(0, &[]).etag());
    }

    fn key(key_id: KeyId, seed: u8) -> EventSigningKey {
        EventSigningKey::from_seed(key_id, &[seed; 32])
    }

    fn claim() -> TicketClaim {
        TicketClaim {
            ticket_id: TicketId(Uuid::from_u128(1)),
            event_id: EventId(Uuid::from_u128(2)),
            show_id: ShowId(Uuid::from_u128(3)),
        }
    }

    #[test]
    fn a_signed_code_is_short_url_safe_and_verifies_with_the_public_key_alone() {
        let signer = key(1, 7);
        let code = signer.sign_code(&claim());
        assert_eq!(code.len(), CODE_CHARS);
        assert!(code.len() <= 200);
        assert!(code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let verifier = Verifier::new(&[signer.public()]);
        assert_eq!(verifier.verify_code(&code), Ok(claim()));
        assert_eq!(code_event(&code), Some(claim().event_id));
    }

    #[test]
    fn a_changed_byte_another_key_or_a_credential_is_forged() {
        let signer = key(1, 7);
        let code = signer.sign_code(&claim());
        let verifier = Verifier::new(&[signer.public()]);
        let mut bytes = decode(&code).expect("base64");
        for at in [0, 2, 10, 40, 60, CODE_BYTES - 1] {
            bytes[at] ^= 1;
            assert_eq!(
                verifier.verify_code(&encode(&bytes)),
                Err(Forged),
                "byte {at}"
            );
            bytes[at] ^= 1;
        }
        // Another event's key, even under the same key id.
        assert_eq!(
            Verifier::new(&[key(1, 8).public()]).verify_code(&code),
            Err(Forged)
        );
        // A rotated-in key does not unsign the old one's codes while both are listed.
        let both = Verifier::new(&[key(2, 9).public(), signer.public()]);
        assert_eq!(both.verify_code(&code), Ok(claim()));
        // A credential is no ticket, whatever its length.
        let credential = signer
            .sign_credential(&GateCredential {
                credential_id: Uuid::from_u128(4),
                tenant_id: TenantId(Uuid::from_u128(5)),
                event_id: EventId(Uuid::from_u128(2)),
                expires_at: DateTime::from_timestamp(2_000_000_000, 0).expect("t"),
                gate: "North 1".into(),
            })
            .expect("short name");
        assert_eq!(verifier.verify_code(&credential), Err(Forged));
        for junk in ["", "not base64 at all!", &"A".repeat(CODE_CHARS)] {
            assert_eq!(verifier.verify_code(junk), Err(Forged));
        }
    }

    #[test]
    fn a_credential_round_trips_and_is_no_ticket() {
        let signer = key(3, 7);
        let credential = GateCredential {
            credential_id: Uuid::from_u128(4),
            tenant_id: TenantId(Uuid::from_u128(5)),
            event_id: EventId(Uuid::from_u128(2)),
            expires_at: DateTime::from_timestamp(2_000_000_000, 0).expect("t"),
            gate: "Nord – Tor 1".into(),
        };
        let token = signer.sign_credential(&credential).expect("short name");
        let verifier = Verifier::new(&[signer.public()]);
        assert_eq!(verifier.verify_credential(&token), Ok(credential.clone()));
        assert_eq!(credential_event(&token), Some(credential.event_id));
        let code = signer.sign_code(&claim());
        assert_eq!(verifier.verify_credential(&code), Err(Forged));
        let mut bytes = decode(&token).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        assert_eq!(verifier.verify_credential(&encode(&bytes)), Err(Forged));
        let long = GateCredential {
            gate: "g".repeat(GATE_NAME_BYTES_MAX + 1),
            ..credential
        };
        assert_eq!(signer.sign_credential(&long), Err(GateNameTooLong));
    }

    #[test]
    fn the_seed_rebuilds_the_same_key() {
        let signer = key(1, 7);
        let again = EventSigningKey::from_seed(1, &signer.seed());
        assert_eq!(again.public(), signer.public());
    }
}

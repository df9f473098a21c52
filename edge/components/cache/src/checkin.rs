//! The edge's checks on a door's scan before it is forwarded (`POST /v1/checkin`): the gate
//! credential (signed by the event's key, unexpired) and the code (signed by the event's
//! keys; `wrong_event` when another event's keys signed it), all with public keys the edge
//! caches, and the event's revoked set (`revoked`). What the edge can judge alone never
//! reaches the ledger; the ledger checks everything again (and what only it knows: the
//! ticket's state, a revocation the edge has not heard of yet).

use chrono::{DateTime, Utc};
use tessera_domain::checkin::{Scan, ScanResult, Verdict};
use tessera_domain::tickets::{code_event, CheckinKey, CheckinKeys, GateCredential, Verifier};
use tessera_domain::{ErrorCode, EventId, Problem};

use crate::problem::edge;

/// The credential, verified with its event's public keys and judged at `now`.
pub fn credential(
    token: &str,
    keys: &[CheckinKey],
    now: DateTime<Utc>,
) -> Result<GateCredential, Box<Problem>> {
    let unauthorized = |detail: &str| Box::new(edge(ErrorCode::Unauthorized, detail));
    let credential = Verifier::new(keys)
        .verify_credential(token)
        .map_err(|_| unauthorized("not a gate credential the ledger signed"))?;
    if credential.expires_at <= now {
        return Err(unauthorized("this gate credential expired"));
    }
    Ok(credential)
}

/// The scan's gate must be the credential's.
pub fn gate(scan: &Scan, credential: &GateCredential) -> Result<(), Box<Problem>> {
    if scan.gate == credential.gate {
        return Ok(());
    }
    Err(Box::new(edge(
        ErrorCode::Forbidden,
        format!("this credential is for gate {:?}", credential.gate),
    )))
}

/// What the edge does with a scan whose credential passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// Signed by the door's event: the ledger redeems it.
    Forward,
    /// Signed by another event's keys: which event, to fetch its keys and tell
    /// `wrong_event` from `invalid`.
    OtherEvent(EventId),
    /// The verdict, answered here.
    Answer(Verdict),
}

/// The scan's code against the door's keys and revoked set (and the door's show, if the
/// scan names one).
pub fn code(scan: &Scan, door: EventId, door_keys: &CheckinKeys) -> CodeCheck {
    let code = scan.code.as_str();
    let refused = |result, claim: &tessera_domain::tickets::TicketClaim| {
        CodeCheck::Answer(Verdict {
            ticket_id: Some(claim.ticket_id),
            ..at_edge(result)
        })
    };
    match Verifier::new(&door_keys.keys).verify_code(code) {
        Ok(claim) if claim.event_id == door && door_keys.is_revoked(claim.ticket_id) => {
            refused(ScanResult::Revoked, &claim)
        }
        Ok(claim) if claim.event_id == door && scan.wrong_show(claim.show_id) => {
            refused(ScanResult::WrongShow, &claim)
        }
        Ok(claim) if claim.event_id == door => CodeCheck::Forward,
        Ok(_) => CodeCheck::Answer(at_edge(ScanResult::Invalid)),
        Err(_) => match code_event(code).filter(|named| *named != door) {
            Some(named) => CodeCheck::OtherEvent(named),
            None => CodeCheck::Answer(at_edge(ScanResult::Invalid)),
        },
    }
}

/// A code naming `named` (not the door's event), against `named`'s keys.
pub fn other_event(code: &str, named: EventId, keys: &[CheckinKey]) -> Verdict {
    match Verifier::new(keys).verify_code(code) {
        Ok(claim) if claim.event_id == named => at_edge(ScanResult::WrongEvent),
        _ => at_edge(ScanResult::Invalid),
    }
}

fn at_edge(result: ScanResult) -> Verdict {
    Verdict {
        served_by: Some("edge".to_owned()),
        ..Verdict::refused(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_domain::tickets::{EventSigningKey, TicketClaim};
    use tessera_domain::{ShowId, TenantId, TicketId};
    use uuid::Uuid;

    fn scan_of(code: &str, show_id: Option<ShowId>) -> Scan {
        Scan {
            code: code.to_owned(),
            gate: "A".into(),
            nonce: "n".into(),
            scanned_at: DateTime::from_timestamp(2_000_000_000, 0).expect("t"),
            offline_entry: false,
            show_id,
        }
    }

    fn event(n: u128) -> EventId {
        EventId(Uuid::from_u128(n))
    }

    fn signed(key: &EventSigningKey, event_id: EventId) -> String {
        key.sign_code(&TicketClaim {
            ticket_id: TicketId(Uuid::from_u128(9)),
            event_id,
            show_id: ShowId(Uuid::from_u128(8)),
        })
    }

    #[test]
    fn the_doors_codes_go_on_others_are_judged_here() {
        let door_key = EventSigningKey::from_seed(1, &[1; 32]);
        let other_key = EventSigningKey::from_seed(1, &[2; 32]);
        let mut door_keys = CheckinKeys {
            event_id: event(1),
            keys: vec![door_key.public()],
            cancelled: false,
            revocation_version: 0,
            revoked: Vec::new(),
        };
        let good = signed(&door_key, event(1));
        assert_eq!(
            code(&scan_of(&good, None), event(1), &door_keys),
            CodeCheck::Forward
        );
        let foreign = signed(&other_key, event(2));
        assert_eq!(
            code(&scan_of(&foreign, None), event(1), &door_keys),
            CodeCheck::OtherEvent(event(2))
        );
        assert_eq!(
            other_event(&foreign, event(2), &[other_key.public()]).result,
            ScanResult::WrongEvent
        );
        // A code claiming another event but signed by no key of it is forged.
        assert_eq!(
            other_event(&foreign, event(2), &door_keys.keys).result,
            ScanResult::Invalid
        );
        let mut bent = good.clone().into_bytes();
        bent[70] = if bent[70] == b'A' { b'B' } else { b'A' };
        let bent = String::from_utf8(bent).expect("ascii");
        match code(&scan_of(&bent, None), event(1), &door_keys) {
            CodeCheck::Answer(verdict) => {
                assert_eq!(verdict.result, ScanResult::Invalid);
                assert_eq!(verdict.served_by.as_deref(), Some("edge"));
            }
            other => panic!("a bent code must be answered here: {other:?}"),
        }
        // A door of another show refuses the code here; its own show's door passes it on.
        match code(
            &scan_of(&good, Some(ShowId(Uuid::from_u128(7)))),
            event(1),
            &door_keys,
        ) {
            CodeCheck::Answer(verdict) => assert_eq!(verdict.result, ScanResult::WrongShow),
            other => panic!("another show's code must be answered here: {other:?}"),
        }
        assert_eq!(
            code(
                &scan_of(&good, Some(ShowId(Uuid::from_u128(8)))),
                event(1),
                &door_keys
            ),
            CodeCheck::Forward
        );
        // A revoked ticket is refused here, naming it; so is every code of a cancelled event.
        door_keys.revoke(1, Some(&[TicketId(Uuid::from_u128(9))]));
        let revoked = |keys: &CheckinKeys| match code(&scan_of(&good, None), event(1), keys) {
            CodeCheck::Answer(verdict) => (verdict.result, verdict.ticket_id),
            other => panic!("a revoked code must be answered here: {other:?}"),
        };
        let ticket = Some(TicketId(Uuid::from_u128(9)));
        assert_eq!(revoked(&door_keys), (ScanResult::Revoked, ticket));
        door_keys.revoked.clear();
        door_keys.cancelled = true;
        assert_eq!(revoked(&door_keys), (ScanResult::Revoked, ticket));
    }

    #[test]
    fn a_credential_is_verified_and_its_time_judged() {
        let key = EventSigningKey::from_seed(1, &[1; 32]);
        let now = DateTime::from_timestamp(2_000_000_000, 0).expect("t");
        let issued = GateCredential {
            credential_id: Uuid::from_u128(3),
            tenant_id: TenantId(Uuid::from_u128(4)),
            event_id: event(1),
            expires_at: now + chrono::Duration::hours(1),
            gate: "A".into(),
        };
        let token = key.sign_credential(&issued).expect("short gate");
        assert_eq!(
            credential(&token, &[key.public()], now).ok(),
            Some(issued.clone())
        );
        let later = now + chrono::Duration::hours(2);
        assert_eq!(
            credential(&token, &[key.public()], later).map_err(|p| p.code),
            Err(ErrorCode::Unauthorized)
        );
        let stranger = EventSigningKey::from_seed(1, &[5; 32]);
        assert!(credential(&token, &[stranger.public()], now).is_err());
    }
}

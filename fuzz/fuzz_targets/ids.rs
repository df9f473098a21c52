//! Typed identifiers from text: the UUID ids (path segments, body fields), customer ids and
//! the `Idempotency-Key` header (`body::idempotency_key`). Never panics; an accepted UUID id
//! has one spelling (hyphenated, 36 characters) that parses back to itself; an accepted
//! token keeps its text, within its length bound and alphabet, and JSON decoding agrees
//! with `parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_domain::body::idempotency_key;
use tessera_domain::ids::{CUSTOMER_ID_LEN_MAX, IDEMPOTENCY_KEY_LEN_MAX};
use tessera_domain::{CustomerId, EventId, HoldId, IdempotencyKey, ShowId, ZoneId};

/// The token alphabet `ids` documents: letters, digits and `- _ . : @`.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')
}

fn check_uuid_ids(text: &str) {
    let parsed = text.parse::<ShowId>();
    // Every UUID id type applies the same rule.
    assert_eq!(parsed.is_ok(), text.parse::<ZoneId>().is_ok());
    assert_eq!(parsed.is_ok(), text.parse::<EventId>().is_ok());
    assert_eq!(parsed.is_ok(), text.parse::<HoldId>().is_ok());
    if let Ok(id) = parsed {
        let shown = id.to_string();
        assert_eq!(shown.len(), 36);
        assert!(shown.eq_ignore_ascii_case(text), "{shown} vs {text}");
        assert_eq!(shown.parse::<ShowId>(), Ok(id));
    }
}

fn check_tokens(data: &[u8], text: &str) {
    let json = serde_json::to_string(text).expect("a string serialises");
    if let Ok(customer) = CustomerId::parse(text) {
        assert_eq!(customer.as_str(), text);
        assert!(text.len() <= CUSTOMER_ID_LEN_MAX && text.chars().all(token_char));
        assert_eq!(
            serde_json::from_str::<CustomerId>(&json).ok(),
            Some(customer)
        );
    } else {
        assert!(serde_json::from_str::<CustomerId>(&json).is_err());
    }
    let key = IdempotencyKey::parse(text);
    if let Ok(key) = &key {
        assert!(!text.is_empty() && text.len() <= IDEMPOTENCY_KEY_LEN_MAX);
        assert!(text.chars().all(token_char));
        assert_eq!(key.as_str(), text);
    }
    // The header rule is the token rule on visible-ASCII bytes; a refusal is 422.
    match idempotency_key(Some(data)) {
        Ok(header) => assert_eq!(key.as_ref(), Ok(&header)),
        Err(problem) => {
            assert!(key.is_err());
            assert_eq!(problem.code.status(), 422);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(idempotency_key(Some(data)).is_err());
        return;
    };
    check_uuid_ids(text);
    check_tokens(data, text);
});

//! `POST /v1/holds/{id}/confirm` bodies: `body::parse_json` then `ConfirmRequest::parse`.
//! Never panics; an accepted payment reference is 1 to 128 characters, not blank, and carries
//! no control character (the shared field rule); an accepted buyer's name is trimmed and
//! bounded, its e-mail bounded, with one `@` and no white space or control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_domain::body::parse_json;
use tessera_domain::buyer::{BUYER_NAME_CHARS_MAX, EMAIL_CHARS_MAX};
use tessera_domain::fields;
use tessera_domain::holds::{ConfirmRequest, PAYMENT_REF_LEN_MAX};

fuzz_target!(|data: &[u8]| {
    let request = match parse_json::<ConfirmRequest>(data) {
        Ok(request) => request,
        Err(problem) => {
            assert!(
                matches!(problem.code.status(), 400 | 422),
                "a body refusal must be 400/422, got {:?}",
                problem.code
            );
            return;
        }
    };
    let Ok(confirmation) = request.parse() else {
        return;
    };
    let payment_ref = confirmation.payment_ref;
    assert!(!payment_ref.is_empty() && payment_ref.chars().count() <= PAYMENT_REF_LEN_MAX);
    assert!(!payment_ref.trim().is_empty());
    assert!(payment_ref.chars().all(|c| !c.is_control()));
    assert!(fields::no_controls("payment_ref", payment_ref).is_ok());
    assert_eq!(payment_ref, request.payment_ref);
    if let Some(buyer) = confirmation.buyer {
        let name = buyer.name.as_str();
        assert!(!name.is_empty() && name.chars().count() <= BUYER_NAME_CHARS_MAX);
        assert_eq!(name, name.trim());
        assert!(fields::no_controls("buyer.name", name).is_ok());
        let email = buyer.email.as_str();
        assert!(email.chars().count() <= EMAIL_CHARS_MAX);
        assert_eq!(email.matches('@').count(), 1);
        assert!(!email.chars().any(char::is_whitespace));
        assert!(fields::no_controls("buyer.email", email).is_ok());
    }
});

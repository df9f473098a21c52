//! `POST /v1/holds/{id}/confirm` bodies: `body::parse_json` then `ConfirmRequest::parse`.
//! Never panics; an accepted payment reference is 1 to 128 characters, not blank, and carries
//! no control character (the shared field rule).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_domain::body::parse_json;
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
    let Ok(payment_ref) = request.parse() else {
        return;
    };
    assert!(!payment_ref.is_empty() && payment_ref.chars().count() <= PAYMENT_REF_LEN_MAX);
    assert!(!payment_ref.trim().is_empty());
    assert!(payment_ref.chars().all(|c| !c.is_control()));
    assert!(fields::no_controls("payment_ref", payment_ref).is_ok());
    assert_eq!(payment_ref, request.payment_ref);
});

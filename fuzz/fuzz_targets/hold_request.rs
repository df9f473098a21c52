//! `POST /v1/holds` bodies: the shared JSON rule (`body::parse_json`) then
//! `HoldRequest::parse`, exactly what the edge's holds component and the ledger run.
//! Never panics; a refusal is a 400 or 422 problem; an accepted hold stays within the
//! documented bounds and its ids and customer id read back to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_domain::body::parse_json;
use tessera_domain::holds::{HoldRequest, SeatPick, QUANTITY_PER_ORDER_MAX};
use tessera_domain::ids::CUSTOMER_ID_LEN_MAX;
use tessera_domain::{CustomerId, ShowId, ZoneId};

fuzz_target!(|data: &[u8]| {
    let request = match parse_json::<HoldRequest>(data) {
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
    // The accepted body re-encodes to JSON that decodes to the same fields.
    let encoded = serde_json::to_vec(&request).expect("a parsed request serialises");
    let again = parse_json::<HoldRequest>(&encoded).expect("its own encoding parses");
    assert_eq!(again.show_id, request.show_id);
    assert_eq!(again.zone_id, request.zone_id);
    assert_eq!(again.quantity, request.quantity);
    assert_eq!(again.customer_id, request.customer_id);
    assert_eq!(again.seats, request.seats);
    assert_eq!(again.best_available, request.best_available);

    let Ok(hold) = request.parse() else {
        return;
    };
    assert!((1..=QUANTITY_PER_ORDER_MAX).contains(&hold.quantity));
    // A quantity, when given, is the hold's; named seats are the hold's count, each once.
    assert!(request
        .quantity
        .is_none_or(|q| q == i64::from(hold.quantity)));
    match &hold.pick {
        SeatPick::Seats(seats) => {
            assert_eq!(
                seats.len(),
                usize::try_from(hold.quantity).expect("positive")
            );
            assert!(
                seats.windows(2).all(|w| w[0] < w[1]),
                "ascending, no repeats"
            );
            assert!(seats.iter().all(|s| *s >= 0));
        }
        SeatPick::BestAvailable => assert!(request.best_available && request.seats.is_none()),
        SeatPick::Quantity => assert!(!request.best_available && request.seats.is_none()),
    }
    let customer = hold.customer_id.as_str();
    assert!(!customer.is_empty() && customer.len() <= CUSTOMER_ID_LEN_MAX);
    assert_eq!(customer, request.customer_id);
    assert_eq!(CustomerId::parse(customer).as_ref(), Ok(&hold.customer_id));
    assert_eq!(hold.show_id.to_string().parse::<ShowId>(), Ok(hold.show_id));
    assert_eq!(hold.zone_id.to_string().parse::<ZoneId>(), Ok(hold.zone_id));
});

//! `GET /v1/events?…` query strings as the edge keys its listing cache
//! (`keys::normalize_query`, `keys::event_list`). Never panics; normalising is idempotent
//! and independent of parameter order, keeps every non-empty parameter, and the cache key
//! exists exactly for queries within `EVENT_LIST_QUERY_MAX` and names one of
//! `EVENT_LIST_SLOTS` slots. (The ledger's own checks of those parameters, `ListQuery` in
//! ledger/src/catalog/public.rs, are private to the ledger and covered by schemathesis.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_edge_cache::keys::{
    event_list, normalize_query, EVENT_LIST_QUERY_MAX, EVENT_LIST_SLOTS,
};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let normal = normalize_query(query);
    assert_eq!(normalize_query(&normal), normal, "not idempotent");
    let pairs = |q: &str| {
        let mut pairs: Vec<String> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        pairs.sort();
        pairs
    };
    assert_eq!(pairs(&normal), pairs(query), "parameters lost or added");
    // Reversing the parameters names the same listing.
    let reversed: Vec<String> = pairs(query).into_iter().rev().collect();
    assert_eq!(normalize_query(&reversed.join("&")), normal);
    match event_list(&normal) {
        Some(key) => {
            assert!(normal.len() <= EVENT_LIST_QUERY_MAX);
            let slot: u64 = key
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("a listing key ends in its slot");
            assert!(slot < EVENT_LIST_SLOTS);
        }
        None => assert!(normal.len() > EVENT_LIST_QUERY_MAX),
    }
});

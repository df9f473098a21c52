//! Messages on the invalidation channel as the edge's invalidator reads them
//! (`invalidation::Received::parse`). Never panics; a change re-encodes to a message that
//! parses back to the same change, and a heartbeat likewise; `seq` is the number the
//! envelope carries whatever the kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_domain::invalidation::Received;

fuzz_target!(|data: &[u8]| {
    let Ok(received) = Received::parse(data) else {
        return;
    };
    // serde_json does not check the escapes of strings it skips (a lone surrogate in a field
    // the envelope ignores): such a message parses, though a full JSON reading refuses it.
    // Harmless (nothing reads those fields); the properties below are for the rest.
    let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // Only objects parse (serde reads a struct from an array too: `[7, "catalog"]` passed
    // for seq 7 until this target found it).
    assert!(envelope.is_object(), "only an object is a message");
    assert_eq!(
        envelope.get("seq").and_then(serde_json::Value::as_i64),
        Some(received.seq())
    );
    let encoded = match &received {
        Received::Change(change) => serde_json::to_vec(change),
        Received::Heartbeat(heartbeat) => serde_json::to_vec(heartbeat),
        Received::Unknown { .. } => return,
    }
    .expect("a parsed message serialises");
    let again = Received::parse(&encoded).expect("its own encoding parses");
    assert_eq!(again, received);
});

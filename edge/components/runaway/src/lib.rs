//! `tessera-runaway`: a test fixture, not part of the application. Every request spins
//! forever, so the host's tests can prove that epoch deadlines stop a runaway guest. Not
//! listed in `spin.toml`.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: IncomingRequest) -> Response {
    let mut counter: u64 = 0;
    // `black_box` keeps the optimiser from proving the loop pointless.
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

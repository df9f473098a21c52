//! The bench's native baselines stop on SIGTERM by exiting on their own, as the ledger and
//! the edge do: that is what lets `cargo xtask bench`'s instrumented build write their
//! profile (a process the signal kills writes none, and its code would be optimised as if
//! it never ran).

// A test's `expect`s are its assertions: the message is the failure report.
#![allow(clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use tessera_testkit::process::{exited_within, terminate, STOP_GRACE};
use tessera_testkit::wait_until;

/// Until the proxy accepts connections (a debug build starts in well under a second).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A port free a moment ago, for the child to bind.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("the listener's address")
}

#[tokio::test]
async fn the_native_proxy_exits_on_its_own_on_sigterm() {
    let addr = free_addr();
    // The proxy only dials its upstream per request; none is sent here.
    let mut proxy = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .args(["serve-proxy", "--addr", &addr.to_string()])
        .args(["--ledger", "http://127.0.0.1:9"])
        .kill_on_drop(true)
        .spawn()
        .expect("starting tessera-bench serve-proxy");
    wait_until("the proxy accepts connections", START_DEADLINE, || async {
        TcpStream::connect(addr).is_ok()
    })
    .await;

    terminate(&proxy).expect("SIGTERM sent");
    let status = exited_within(&mut proxy, STOP_GRACE)
        .await
        .expect("the proxy exited within the stop grace");
    assert!(
        status.success(),
        "the proxy should exit 0 on SIGTERM, not be killed by it: {status}"
    );
}

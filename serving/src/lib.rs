//! Server plumbing the ledger and the edge host share (`tessera-serving`):
//!
//! - [`serve`]: the HTTP/1.1 accept loop of every listener (the ledger's public and
//!   operations listeners, the edge's public and operations listeners), instead of
//!   `axum::serve` or hyper-util's auto builder, which time out nothing and bound nothing
//!   (and sniff for HTTP/2 waiting for a first byte with no timeout at all). A connection
//!   must send a whole request head within the header-read timeout of opening or of its
//!   previous response, and a head no larger than the listener's bound (past it hyper
//!   answers `431` and closes); at most `connections_max` are open at once, and one past
//!   the bound is accepted and closed at once. What each listener counts and logs about
//!   its connections stays its own ([`Report`]); the bounds' values are the callers'.
//! - [`fit_to_open_files`]: raise the open-file soft limit and fit a connection bound
//!   under it, at start-up.
//! - [`read_env`]: settings from the process environment, refusing a value that is not
//!   UTF-8 instead of reading it as unset.
//! - [`shutdown_signal`]: Ctrl-C or SIGTERM, what every server here stops on.

mod accept;
mod env;
mod open_files;
mod signal;

pub use accept::{serve, ConnectionPolicy, Drain, OnShutdown, Report, ACCEPT_BACKOFF};
pub use env::{read_env, Lookup, NotUnicode};
pub use open_files::fit_to_open_files;
pub use signal::shutdown_signal;

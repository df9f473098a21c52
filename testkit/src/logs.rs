//! Everything a test's code logs, at every level: for asserting that a secret (a private
//! key, a token) appears in no log line. The subscriber is the test thread's default while
//! the [`LogCapture`] lives, so run the ledger in the test's own runtime (`spawn_app`).

use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing::Dispatch;

/// The captured output, and the guard that keeps the capturing subscriber installed.
pub struct LogCapture {
    written: Written,
    _guard: DefaultGuard,
    /// A second registered dispatcher that is never anyone's default. With exactly one
    /// registered, tracing-core takes a shortcut: callsite interest and the global max
    /// level are computed from *the calling thread's* default, so a callsite first hit by
    /// a test running beside this one (a thread with no subscriber) was disabled for every
    /// thread, and the capture missed its lines (ledger/tests/orders.rs saw it).
    _second: Dispatch,
}

impl LogCapture {
    /// Installs a TRACE-level subscriber writing into memory (no colours).
    pub fn start() -> Self {
        let written = Written::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(written.clone())
            .finish();
        // Registered first, so that this capture's registration already counts two.
        let second = Dispatch::new(tracing::subscriber::NoSubscriber::default());
        Self {
            _guard: tracing::subscriber::set_default(subscriber),
            written,
            _second: second,
        }
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        let bytes = self
            .written
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[derive(Clone, Default)]
struct Written(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Written {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Written {
    type Writer = Written;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

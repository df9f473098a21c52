//! The open-file limit, fitted at start-up.

use std::num::NonZeroUsize;

use tessera_domain::settings::connections_fitting;

/// Raises the open-file soft limit to the hard one and lowers `wanted` (the connection
/// bound, configured as `setting`) to what fits under it: a bound above the limit would
/// never trigger, `accept` would fail first.
pub fn fit_to_open_files(wanted: NonZeroUsize, setting: &str) -> NonZeroUsize {
    let fd_limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            return wanted;
        }
    };
    let fitting = connections_fitting(wanted.get(), fd_limit).and_then(NonZeroUsize::new);
    match fitting {
        Some(fit) => {
            tracing::warn!(
                wanted,
                fit,
                fd_limit,
                "{setting} lowered to fit the open-file limit"
            );
            fit
        }
        None => wanted,
    }
}

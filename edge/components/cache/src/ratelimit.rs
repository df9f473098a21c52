//! Rate limits at the edge node, the pure half: fixed windows counted per client address
//! and route class in the node's key-value store ([`crate::keys::rate_limit`]), with the
//! Spin half in `spin::ratelimit` (the `wasi:keyvalue/atomics` increment, the variables).
//!
//! - **Classes** ([`Class`]): `reads` (catalog GETs, holds/orders GETs, queue polls),
//!   `joins` (queue joins), `holds` (hold writes), `checkin` (door scans); each has its own
//!   limit, `rate_limit_{class}_per_s`, 0 = off.
//! - **Windows** ([`Window`]): fixed, `rate_limit_window_s` long, aligned to the Unix epoch
//!   so every instance of every component of a node agrees on them without talking. A
//!   window allows `per_s × window_s` requests ([`allowance`]); the one past it is refused
//!   with `Retry-After` = the seconds left in the window, at least 1 ([`Window::retry_after_s`]).
//!   Fixed windows let a client send up to twice the allowance across a boundary; the
//!   allowance is a bound on abuse, not a fair share, and one increment per request is all
//!   it costs (GCRA would need a compare-and-swap loop on the store).
//! - **Addresses** ([`client_addr`]): the connection's (`spin-client-addr`, port stripped),
//!   or the rightmost entry of a forwarding header when the deployment names one it trusts
//!   (its own proxy appends the address it saw there). IPv6 clients count per /64 (what
//!   one subscriber is given), IPv4-mapped IPv6 as IPv4.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::config;

/// The route classes, each limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Catalog and availability GETs, hold and order GETs, queue polls.
    Reads,
    /// Joining an event's queue (`POST /v1/events/{id}/queue`).
    Joins,
    /// Hold writes (`POST /v1/holds`, confirm, release).
    Holds,
    /// Door scans (`POST /v1/checkin`).
    Checkin,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Reads, Class::Joins, Class::Holds, Class::Checkin];

    /// The class's name in keys and documents.
    pub fn name(self) -> &'static str {
        match self {
            Class::Reads => "reads",
            Class::Joins => "joins",
            Class::Holds => "holds",
            Class::Checkin => "checkin",
        }
    }

    /// The class of a request on routes whose writes are `self`: `self` for a write, and
    /// [`Class::Reads`] for a read (`GET /v1/holds/{id}` is a read, `POST /v1/holds` a hold).
    pub fn for_write(self, is_write: bool) -> Class {
        if is_write {
            self
        } else {
            Class::Reads
        }
    }

    /// The variable naming the class's limit (requests per second, 0 = off) and its
    /// default.
    pub fn limit_variable(self) -> (&'static str, u64) {
        match self {
            Class::Reads => config::RATE_LIMIT_READS_PER_S,
            Class::Joins => config::RATE_LIMIT_JOINS_PER_S,
            Class::Holds => config::RATE_LIMIT_HOLDS_PER_S,
            Class::Checkin => config::RATE_LIMIT_CHECKIN_PER_S,
        }
    }
}

/// The longest window: a day. Longer would make `Retry-After` meaningless and keys outlive
/// any reason to keep them.
pub const WINDOW_S_MAX: u64 = 86_400;

/// Requests one address may make in one window of `window_s` seconds at `per_s` per
/// second; `None` when the class is off (`per_s` = 0).
pub fn allowance(per_s: u64, window_s: u64) -> Option<u64> {
    (per_s > 0).then(|| per_s.saturating_mul(window_len_s(window_s)))
}

/// `window_s` clamped to 1..=[`WINDOW_S_MAX`]: a 0 would divide by zero.
fn window_len_s(window_s: u64) -> u64 {
    window_s.clamp(1, WINDOW_S_MAX)
}

/// One fixed window: `[start_s, start_s + len_s)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_s: u64,
    pub len_s: u64,
}

impl Window {
    /// The window of `len_s` seconds (clamped to 1..=[`WINDOW_S_MAX`]) that `now_ms`
    /// (Unix ms; before 1970 reads as 0) falls in.
    pub fn containing(now_ms: i64, len_s: u64) -> Self {
        let len_s = window_len_s(len_s);
        let now_s = u64::try_from(now_ms).unwrap_or(0) / 1000;
        Self {
            start_s: now_s - now_s % len_s,
            len_s,
        }
    }

    /// When the window ends, Unix seconds.
    pub fn end_s(&self) -> u64 {
        self.start_s.saturating_add(self.len_s)
    }

    /// Whole seconds from `now_ms` until the window ends, rounded up, at least 1: a client
    /// that waits this long lands in the next window.
    pub fn retry_after_s(&self, now_ms: i64) -> u64 {
        let now_ms = u64::try_from(now_ms).unwrap_or(0);
        let end_ms = self.end_s().saturating_mul(1000);
        end_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
    }
}

/// What to do with a request that made the window's count `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Limited { retry_after_s: u64 },
}

/// The request that brought the window's count to `count` (the increment's answer) is
/// allowed while the count is within `allowance`.
pub fn judge(count: i64, allowance: u64, window: Window, now_ms: i64) -> Verdict {
    let within = u64::try_from(count).map_or(true, |count| count <= allowance);
    if within {
        Verdict::Allowed
    } else {
        Verdict::Limited {
            retry_after_s: window.retry_after_s(now_ms),
        }
    }
}

/// Entries of a forwarding header looked at, from the right: a longer list is no address.
const FORWARDED_ENTRIES_MAX: usize = 64;

/// The address a request is counted under: the rightmost entry of the trusted forwarding
/// header's values (`forwarded`, all its lines in order) when one was named and it holds
/// an address, else the connection's (`spin-client-addr`, `ip:port`). `None`: neither
/// names one (a host that passes no address); the caller decides.
pub fn client_addr(connection: Option<&str>, forwarded: Option<&[Vec<u8>]>) -> Option<String> {
    let from_proxy = forwarded.and_then(rightmost_forwarded);
    from_proxy
        .or_else(|| connection.and_then(parse_addr))
        .map(bucket)
}

/// The rightmost address of a forwarding header: `X-Forwarded-For` lists (`a, b`) or
/// RFC 7239 `Forwarded` elements (`for=a;proto=…, for="[v6]:port"`).
fn rightmost_forwarded(lines: &[Vec<u8>]) -> Option<IpAddr> {
    let last = lines.last()?;
    let text = std::str::from_utf8(last).ok()?;
    let entry = text
        .rsplit(',')
        .take(FORWARDED_ENTRIES_MAX)
        .map(str::trim)
        .find(|entry| !entry.is_empty())?;
    let value = match entry
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix("for=").or(pair.strip_prefix("FOR=")))
    {
        Some(value) => value.trim_matches('"'),
        None => entry,
    };
    parse_addr(value)
}

/// `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The address as counted: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_of_write_routes_count_as_reads() {
        assert_eq!(Class::Holds.for_write(true), Class::Holds);
        assert_eq!(Class::Holds.for_write(false), Class::Reads);
        assert_eq!(Class::Joins.for_write(false), Class::Reads);
        let names: Vec<_> = Class::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["reads", "joins", "holds", "checkin"]);
    }

    #[test]
    fn a_zero_limit_is_off_and_the_allowance_scales_with_the_window() {
        assert_eq!(allowance(0, 10), None);
        assert_eq!(allowance(5, 10), Some(50));
        assert_eq!(
            allowance(5, 0),
            Some(5),
            "a zero window counts as one second"
        );
        assert_eq!(allowance(u64::MAX, 10), Some(u64::MAX));
    }

    #[test]
    fn windows_are_aligned_and_retry_after_reaches_the_next_one() {
        let window = Window::containing(1_700_000_007_250, 10);
        assert_eq!(window.start_s, 1_700_000_000);
        assert_eq!(window.end_s(), 1_700_000_010);
        assert_eq!(window.retry_after_s(1_700_000_007_250), 3);
        assert_eq!(window.retry_after_s(1_700_000_009_999), 1);
        assert_eq!(window.retry_after_s(1_700_000_010_500), 1, "never 0");
        assert_eq!(Window::containing(-5, 10).start_s, 0);
    }

    #[test]
    fn the_request_past_the_allowance_is_limited() {
        let now_ms = 1_700_000_000_100;
        let window = Window::containing(now_ms, 1);
        assert_eq!(judge(3, 3, window, now_ms), Verdict::Allowed);
        assert_eq!(
            judge(4, 3, window, now_ms),
            Verdict::Limited { retry_after_s: 1 }
        );
        assert_eq!(judge(-1, 3, window, now_ms), Verdict::Allowed);
    }

    #[test]
    fn the_connection_address_loses_its_port() {
        assert_eq!(
            client_addr(Some("127.0.0.2:51234"), None).as_deref(),
            Some("127.0.0.2")
        );
        assert_eq!(
            client_addr(Some("[2001:db8:1:2:3:4:5:6]:443"), None).as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            client_addr(Some("[::ffff:10.0.0.1]:80"), None).as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(client_addr(Some("garbage"), None), None);
        assert_eq!(client_addr(None, None), None);
    }

    #[test]
    fn a_trusted_forwarding_header_names_its_rightmost_address() {
        let lines = |values: &[&str]| -> Vec<Vec<u8>> {
            values.iter().map(|v| v.as_bytes().to_vec()).collect()
        };
        let connection = Some("127.0.0.1:9000");
        let xff = lines(&["203.0.113.9, 198.51.100.7"]);
        assert_eq!(
            client_addr(connection, Some(&xff)).as_deref(),
            Some("198.51.100.7")
        );
        // A second header line was appended by the proxy: its entry is the one to trust.
        let two = lines(&["6.6.6.6", "198.51.100.8 ,"]);
        assert_eq!(
            client_addr(connection, Some(&two)).as_deref(),
            Some("198.51.100.8")
        );
        let forwarded = lines(&["for=1.1.1.1, for=\"[2001:db8::1]:4711\";proto=https"]);
        assert_eq!(
            client_addr(connection, Some(&forwarded)).as_deref(),
            Some("2001:db8::/64")
        );
        // Unreadable or absent: the connection counts.
        for junk in [lines(&["not an address"]), lines(&[]), vec![vec![0xff]]] {
            assert_eq!(
                client_addr(connection, Some(&junk)).as_deref(),
                Some("127.0.0.1")
            );
        }
    }

    proptest! {
        /// Within one window exactly `allowance` requests pass, and every refusal's
        /// `Retry-After` lands at or past the window's end and at most its length away.
        #[test]
        fn exactly_the_allowance_passes_per_window(
            now_ms in 0i64..4_000_000_000_000,
            per_s in 1u64..50,
            window_s in 1u64..120,
            requests in 0i64..400,
        ) {
            let window = Window::containing(now_ms, window_s);
            let allowance = allowance(per_s, window_s).unwrap_or(u64::MAX);
            let mut passed = 0u64;
            for count in 1..=requests {
                match judge(count, allowance, window, now_ms) {
                    Verdict::Allowed => passed += 1,
                    Verdict::Limited { retry_after_s } => {
                        prop_assert!(retry_after_s >= 1);
                        prop_assert!(retry_after_s <= window.len_s);
                        let retry_at_ms = now_ms as u64 + retry_after_s * 1000;
                        prop_assert!(retry_at_ms >= window.end_s() * 1000);
                        prop_assert_eq!(
                            Window::containing(retry_at_ms as i64, window_s).start_s,
                            window.end_s()
                        );
                    }
                }
            }
            prop_assert_eq!(passed, (requests as u64).min(allowance));
            prop_assert!(window.start_s * 1000 <= now_ms as u64);
            prop_assert!((now_ms as u64) < window.end_s() * 1000);
        }
    }
}

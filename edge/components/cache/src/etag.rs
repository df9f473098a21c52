//! Entity tags (RFC 9110 §8.8.3), `If-None-Match` (§13.1.2) and the `Cache-Control` the
//! edge sends with them. All tags the edge makes are strong; `If-None-Match` uses the weak
//! comparison, so `W/"x"` matches `"x"`.

use tessera_domain::catalog::ZoneAvailability;

/// How long browsers and shared caches in front of the edge may reuse an answer. The edge
/// itself stays current through invalidation; these only bound what it cannot reach.
/// Availability moves every second during a sale, so barely cached; listings change with
/// any edit or publication; an event detail changes only when edited; categories (names
/// and counts) change least.
pub const CACHE_CONTROL_AVAILABILITY: &str = "public, max-age=1";
/// Seat states move with every hold, as availability does.
pub const CACHE_CONTROL_SEAT_MAP: &str = CACHE_CONTROL_AVAILABILITY;
pub const CACHE_CONTROL_LIST: &str = "public, max-age=5";
pub const CACHE_CONTROL_EVENT: &str = "public, max-age=10";
pub const CACHE_CONTROL_CATEGORIES: &str = "public, max-age=60";

/// 64-bit FNV-1a: a fast, dependency-free fingerprint for tags (not a security boundary).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Listings and categories: a hash of the body.
pub fn for_body(body: &[u8]) -> String {
    format!("\"b{:016x}\"", fnv1a64(body))
}

/// An event detail: its catalog `version`, bumped on every edit.
pub fn for_event_version(version: i64) -> String {
    format!("\"e{version}\"")
}

/// An event detail's tag: its catalog `version`, or a body hash if it has none.
pub fn for_event_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        version: Option<i64>,
    }
    match serde_json::from_slice::<VersionOnly>(body) {
        Ok(VersionOnly {
            version: Some(version),
        }) => for_event_version(version),
        _ => for_body(body),
    }
}

/// An event's check-in keys: the ledger's own tag (the key ids), or a body hash if the body
/// is not such a document.
pub fn for_checkin_keys_body(body: &[u8]) -> String {
    match serde_json::from_slice::<tessera_domain::tickets::CheckinKeys>(body) {
        Ok(keys) => keys.etag(),
        Err(_) => for_body(body),
    }
}

/// Availability: the sum of the zone versions (each only grows, so any zone update raises
/// the sum), the number of zones (a zone added or removed) and the number of zones at zero
/// (a `sold_out` answer recorded without a new version).
pub fn for_availability<'a>(zones: impl IntoIterator<Item = &'a ZoneAvailability>) -> String {
    let (mut sum, mut count, mut empty) = (0i128, 0usize, 0usize);
    for zone in zones {
        sum += i128::from(zone.version);
        count += 1;
        empty += usize::from(zone.available <= 0);
    }
    format!("\"a{sum}-{count}-{empty}\"")
}

/// Whether `If-None-Match: header` matches `etag` (a quoted tag): `*` matches anything,
/// otherwise any listed tag that equals it ignoring a `W/` prefix. A malformed header
/// matches nothing (the full response is always safe).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    let wanted = etag.strip_prefix("W/").unwrap_or(etag);
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return false;
        }
        let tag_start = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(inner) = tag_start.strip_prefix('"') else {
            return false;
        };
        let Some(end) = inner.find('"') else {
            return false;
        };
        // `end + 2`: both quotes.
        if tag_start[..end + 2] == *wanted {
            return true;
        }
        rest = &tag_start[end + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_domain::ZoneId;

    #[test]
    fn an_event_is_tagged_by_its_version_else_by_its_body() {
        assert_eq!(for_event_body(br#"{"version": 7, "title": "x"}"#), "\"e7\"");
        let unversioned = br#"{"title": "x"}"#;
        assert_eq!(for_event_body(unversioned), for_body(unversioned));
    }

    fn zone(n: u8, available: i32, version: i64) -> ZoneAvailability {
        ZoneAvailability {
            zone_id: format!("00000000-0000-0000-0000-0000000000{n:02x}")
                .parse::<ZoneId>()
                .expect("valid"),
            available,
            held: 0,
            sold: 0,
            capacity: available,
            version,
        }
    }

    #[test]
    fn availability_tag_changes_when_any_zone_changes() {
        let base = [zone(1, 5, 10), zone(2, 5, 20), zone(3, 5, 30)];
        let tag = for_availability(&base);
        for i in 0..base.len() {
            let mut next = base.clone();
            next[i].version += 1;
            assert_ne!(for_availability(&next), tag, "zone {i}");
        }
        let mut sold_out = base.clone();
        sold_out[1].available = 0;
        assert_ne!(for_availability(&sold_out), tag);
        assert_ne!(for_availability(&base[..2]), tag);
        assert_eq!(for_availability(&base.clone()), tag, "deterministic");
    }

    #[test]
    fn body_and_version_tags() {
        assert_eq!(for_body(b"[]"), for_body(b"[]"));
        assert_ne!(for_body(b"[]"), for_body(b"[ ]"));
        assert_eq!(for_event_version(7), "\"e7\"");
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn if_none_match_handles_star_weak_tags_and_lists() {
        let tag = "\"e7\"";
        assert!(if_none_match("\"e7\"", tag));
        assert!(if_none_match("*", tag));
        assert!(if_none_match(" * ", tag));
        assert!(if_none_match("W/\"e7\"", tag));
        assert!(if_none_match("\"x\", W/\"e7\"", tag));
        assert!(if_none_match("\"x\",\"e7\"", tag));
        assert!(if_none_match("\"a,b\", \"e7\"", tag), "comma inside a tag");
        assert!(!if_none_match("\"e8\"", tag));
        assert!(!if_none_match("\"e7", tag));
        assert!(!if_none_match("e7", tag));
        assert!(!if_none_match("", tag));
        assert!(
            !if_none_match("\"x\", garbage, \"e7\"", tag),
            "malformed matches nothing"
        );
        assert!(if_none_match("\"e7\"", "W/\"e7\""));
    }
}

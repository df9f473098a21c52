//! The stored form of cache entries: what a hit needs comes first, in a fixed binary head,
//! so a hit checks 30 bytes and answers with slices of the value the store handed over —
//! no parsing, no copies. The public JSON and the ETag are rendered once, when an entry is
//! written (a fetch, a pushed change, a `sold_out` note), never when it is read.
//!
//! Layout (integers little-endian):
//!
//! | bytes | what |
//! | --- | --- |
//! | 0..4 | magic: [`Kind::Availability`] `TAV1`, [`Kind::Document`] `TDC1`, [`Kind::SeatMap`] `TSM1` |
//! | 4..12 | `stored_at_ms` (i64) |
//! | 12..20 | `expires_at_ms` (i64) |
//! | 20..22 | ETag length (u16) |
//! | 22..26 | body length (u32) |
//! | 26..30 | rest length (u32) |
//! | 30.. | the quoted ETag, the response body, the rest |
//!
//! The rest of an availability entry: show id and event id (16 bytes each), the zone count
//! (u16), then per zone its id (16 bytes), `available`, `held`, `sold`, `capacity` (i32
//! each), `version`, `confirmed_at_ms`, `sold_out_at_ms` (i64 each; `i64::MIN`: none).
//! The rest of a document: the source (u16 length, bytes), then the catalog epoch (a flag
//! byte, 0 none or 1 some, then u16 length and bytes). A seat map's:
//! [`crate::seat_map`].
//!
//! Anything else — a short value, other magic, lengths that do not add up, an ETag that is
//! not a quoted visible-ASCII tag — is [`Corrupt`]: readers treat it as a miss and delete
//! it, so an entry an older version of the components wrote (JSON) is refetched once.

use std::ops::Range;

use crate::ttl;

/// Bytes of the fixed head.
pub const HEAD_BYTES: usize = 30;
/// Bytes of one zone in an availability entry's rest.
pub const ZONE_BYTES: usize = 16 + 4 * 4 + 3 * 8;
/// Bytes of an availability entry's rest before its zones (two ids and the zone count).
pub const AVAIL_REST_HEAD_BYTES: usize = 16 + 16 + 2;
/// What an absent `sold_out_at_ms` is stored as.
pub const NO_TIME: i64 = i64::MIN;

/// Which kind of entry a value holds (its magic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `avail/{show_id}`: [`crate::entry::AvailEntry`].
    Availability,
    /// `event/…`, `events/…`, `categories`: [`crate::entry::DocEntry`].
    Document,
    /// `seats/{show_id}`: [`crate::seat_map::SeatMapEntry`].
    SeatMap,
}

impl Kind {
    fn magic(self) -> [u8; 4] {
        match self {
            Self::Availability => *b"TAV1",
            Self::Document => *b"TDC1",
            Self::SeatMap => *b"TSM1",
        }
    }
}

/// Why stored bytes are not an entry of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt cache entry: {0}")]
pub struct Corrupt(pub &'static str);

/// Why an entry cannot be written (a field past what the layout's lengths can say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cache entry too large to store: {0}")]
pub struct Unstorable(pub &'static str);

/// An entry's stored bytes, checked: its times, ETag and body, read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    bytes: Vec<u8>,
    stored_at_ms: i64,
    expires_at_ms: i64,
    etag: Range<usize>,
    body: Range<usize>,
}

impl Stored {
    /// Checks `bytes` as an entry of `kind`. Reads the head and the ETag, nothing else: the
    /// body goes out as it is, and the rest is read only by writers.
    pub fn parse(bytes: Vec<u8>, kind: Kind) -> Result<Self, Corrupt> {
        let head = bytes
            .get(..HEAD_BYTES)
            .ok_or(Corrupt("shorter than the head"))?;
        if head[..4] != kind.magic() {
            return Err(Corrupt("not an entry of this kind"));
        }
        let mut reader = Reader::new(&head[4..]);
        let stored_at_ms = reader.i64()?;
        let expires_at_ms = reader.i64()?;
        let etag_len = usize::from(reader.u16()?);
        let body_len = reader.len32()?;
        let rest_len = reader.len32()?;
        let etag = HEAD_BYTES..HEAD_BYTES + etag_len;
        let body = etag.end..etag.end.saturating_add(body_len);
        if body.end.checked_add(rest_len) != Some(bytes.len()) {
            return Err(Corrupt("lengths do not add up"));
        }
        if !is_quoted_tag(&bytes[etag.clone()]) {
            return Err(Corrupt("the ETag is not a quoted tag"));
        }
        Ok(Self {
            bytes,
            stored_at_ms,
            expires_at_ms,
            etag,
            body,
        })
    }

    pub fn stored_at_ms(&self) -> i64 {
        self.stored_at_ms
    }

    pub fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }

    /// Whether a read through to the ledger that arrived at `since_ms` may answer with this
    /// entry ([`crate::entry::AvailEntry::fetched_since`]).
    pub fn fetched_since(&self, since_ms: i64) -> bool {
        self.stored_at_ms >= since_ms
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        ttl::is_fresh(self.stored_at_ms, self.expires_at_ms, now_ms)
    }

    /// The quoted entity tag (checked visible ASCII by [`Self::parse`]).
    pub fn etag(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.etag.clone()]).unwrap_or_default()
    }

    /// The response body.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body.clone()]
    }

    /// The stored bytes, whole.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// What follows the body (the kind's own fields).
    pub fn rest(&self) -> &[u8] {
        &self.bytes[self.body.end..]
    }

    /// A document's source (`path?query` it was fetched for) and catalog epoch.
    pub fn document_fields(&self) -> Result<(&[u8], Option<&[u8]>), Corrupt> {
        let mut reader = Reader::new(self.rest());
        let source = reader.bytes16()?;
        let epoch = match reader.u8()? {
            0 => None,
            1 => Some(reader.bytes16()?),
            _ => return Err(Corrupt("bad epoch flag")),
        };
        reader.end()?;
        Ok((source, epoch))
    }
}

/// Whether `tag` is an entity tag as the edge writes them: `"…"` of visible ASCII, so it
/// is always a valid header value.
fn is_quoted_tag(tag: &[u8]) -> bool {
    tag.len() >= 2
        && tag.first() == Some(&b'"')
        && tag.last() == Some(&b'"')
        && tag.iter().all(|b| b.is_ascii_graphic())
}

/// Writes one entry: the head, the ETag and the body, then the rest (`write_rest`), in one
/// allocation of the right size (`rest_hint`: the rest's expected length).
pub fn encode(
    kind: Kind,
    times_ms: (i64, i64),
    etag: &str,
    body: &[u8],
    rest_hint: usize,
    write_rest: impl FnOnce(&mut Writer),
) -> Result<Vec<u8>, Unstorable> {
    let etag_len = u16::try_from(etag.len()).map_err(|_| Unstorable("ETag"))?;
    let body_len = u32::try_from(body.len()).map_err(|_| Unstorable("body"))?;
    let mut out = Vec::with_capacity(HEAD_BYTES + etag.len() + body.len() + rest_hint);
    out.extend_from_slice(&kind.magic());
    out.extend_from_slice(&times_ms.0.to_le_bytes());
    out.extend_from_slice(&times_ms.1.to_le_bytes());
    out.extend_from_slice(&etag_len.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(etag.as_bytes());
    out.extend_from_slice(body);
    let rest_start = out.len();
    let mut writer = Writer {
        out,
        too_long: false,
    };
    write_rest(&mut writer);
    let Writer { mut out, too_long } = writer;
    let rest_len = u32::try_from(out.len() - rest_start).map_err(|_| Unstorable("rest"))?;
    if too_long {
        return Err(Unstorable("a field of the rest"));
    }
    out[26..30].copy_from_slice(&rest_len.to_le_bytes());
    Ok(out)
}

/// Appends an entry's rest.
pub struct Writer {
    out: Vec<u8>,
    /// A field did not fit its length prefix: [`encode`] refuses the entry.
    too_long: bool,
}

impl Writer {
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub fn u16(&mut self, value: usize) {
        match u16::try_from(value) {
            Ok(value) => self.raw(&value.to_le_bytes()),
            Err(_) => self.too_long = true,
        }
    }

    pub fn i32(&mut self, value: i32) {
        self.raw(&value.to_le_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.raw(&value.to_le_bytes());
    }

    /// A u32 length, then the bytes.
    pub fn bytes32(&mut self, bytes: &[u8]) {
        match u32::try_from(bytes.len()) {
            Ok(len) => {
                self.raw(&len.to_le_bytes());
                self.raw(bytes);
            }
            Err(_) => self.too_long = true,
        }
    }

    /// A u16 length, then the bytes.
    pub fn bytes16(&mut self, bytes: &[u8]) {
        self.u16(bytes.len());
        self.raw(bytes);
    }
}

/// Reads an entry's fields in order; running out is [`Corrupt`].
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(Corrupt("cut short"))?;
        self.rest = rest;
        Ok(*head)
    }

    pub fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.take::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, Corrupt> {
        self.take().map(u16::from_le_bytes)
    }

    /// A u32 length.
    pub fn len32(&mut self) -> Result<usize, Corrupt> {
        let len = self.take().map(u32::from_le_bytes)?;
        usize::try_from(len).map_err(|_| Corrupt("length past the address space"))
    }

    pub fn i32(&mut self) -> Result<i32, Corrupt> {
        self.take().map(i32::from_le_bytes)
    }

    pub fn i64(&mut self) -> Result<i64, Corrupt> {
        self.take().map(i64::from_le_bytes)
    }

    /// A u16 length, then that many bytes.
    pub fn bytes16(&mut self) -> Result<&'a [u8], Corrupt> {
        let len = usize::from(self.u16()?);
        self.bytes(len)
    }

    /// A u32 length, then that many bytes.
    pub fn bytes32(&mut self) -> Result<&'a [u8], Corrupt> {
        let len = self.len32()?;
        self.bytes(len)
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], Corrupt> {
        if self.rest.len() < len {
            return Err(Corrupt("cut short"));
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    /// Nothing may follow the last field.
    pub fn end(&self) -> Result<(), Corrupt> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Corrupt("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(etag: &str, body: &[u8]) -> Vec<u8> {
        encode(Kind::Document, (10, 20), etag, body, 8, |w| {
            w.bytes16(b"/v1/categories");
            w.u8(1);
            w.bytes16(b"7-100");
        })
        .expect("encodes")
    }

    #[test]
    fn a_stored_entry_reads_in_place() {
        let stored = Stored::parse(document("\"b1\"", b"[1,2]"), Kind::Document).expect("parses");
        assert_eq!(stored.etag(), "\"b1\"");
        assert_eq!(stored.body(), b"[1,2]");
        assert_eq!(stored.stored_at_ms(), 10);
        assert!(stored.is_fresh(10) && stored.is_fresh(19) && !stored.is_fresh(20));
        assert_eq!(
            stored.document_fields(),
            Ok((&b"/v1/categories"[..], Some(&b"7-100"[..])))
        );
    }

    #[test]
    fn anything_but_a_whole_entry_of_the_kind_is_corrupt() {
        let bytes = document("\"b1\"", b"[]");
        assert!(
            Stored::parse(bytes.clone(), Kind::Availability).is_err(),
            "kind"
        );
        for cut in [0, 4, HEAD_BYTES - 1, HEAD_BYTES, bytes.len() - 1] {
            assert!(
                Stored::parse(bytes[..cut].to_vec(), Kind::Document).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Stored::parse(longer, Kind::Document).is_err(), "trailing");
        assert!(
            Stored::parse(b"{\"etag\":\"x\"}".to_vec(), Kind::Document).is_err(),
            "JSON"
        );
        let mut huge = bytes.clone();
        huge[22..26].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            Stored::parse(huge, Kind::Document).is_err(),
            "body past the end"
        );
        for bad_tag in ["b1", "\"a b\"", "\"\u{e9}\"", "\""] {
            assert!(
                Stored::parse(document(bad_tag, b"[]"), Kind::Document).is_err(),
                "{bad_tag:?}"
            );
        }
    }

    #[test]
    fn fields_past_their_length_prefix_are_refused() {
        let long = vec![b'x'; usize::from(u16::MAX) + 1];
        let refused = encode(Kind::Document, (0, 1), "\"t\"", b"", 0, |w| {
            w.bytes16(&long)
        });
        assert_eq!(refused, Err(Unstorable("a field of the rest")));
        let long_tag = format!("\"{}\"", "x".repeat(usize::from(u16::MAX)));
        assert!(encode(Kind::Document, (0, 1), &long_tag, b"", 0, |_| {}).is_err());
    }
}

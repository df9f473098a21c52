//! Content-coding negotiation from `Accept-Encoding` (RFC 9110 §12.5.3): the storefront's
//! files are precompressed as brotli and gzip, and the coding the client weighs highest
//! (ties: brotli, the smaller) among those the file has is sent; otherwise the raw bytes.

/// A content coding the storefront can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
}

impl Coding {
    /// The `Content-Encoding` value, if the bytes are coded.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Br => Some("br"),
        }
    }
}

/// Which codings a file was kept in besides identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Available {
    pub gzip: bool,
    pub br: bool,
}

/// Items of one `Accept-Encoding` looked at: browsers send about five; anything past this
/// is ignored (the head is bounded by the host anyway, this bounds the work).
const ITEMS_MAX: usize = 32;
/// `q=1` in thousandths (a qvalue has at most three decimals).
const Q_MAX: u16 = 1000;

/// The coding to send for `accept_encoding` (the request's header lines joined with
/// commas; `None` without the header: identity, RFC 9110 §12.5.3).
pub fn negotiate(accept_encoding: Option<&str>, available: Available) -> Coding {
    let Some(header) = accept_encoding else {
        return Coding::Identity;
    };
    let weights = Weights::parse(header);
    let br = if available.br { weights.br() } else { 0 };
    let gzip = if available.gzip { weights.gzip() } else { 0 };
    match (br, gzip) {
        (0, 0) => Coding::Identity,
        // Brotli wins ties: it is the smaller of the two.
        (br, gzip) if br >= gzip => Coding::Br,
        _ => Coding::Gzip,
    }
}

/// The weights (thousandths) the header gives brotli, gzip and `*`; `None` when unnamed.
#[derive(Debug, Default)]
struct Weights {
    br: Option<u16>,
    gzip: Option<u16>,
    star: Option<u16>,
}

impl Weights {
    fn parse(header: &str) -> Self {
        let mut weights = Self::default();
        for item in header.split(',').take(ITEMS_MAX) {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            // A malformed weight drops the item: the raw bytes are always acceptable.
            let Some(q) = weight(parts) else {
                continue;
            };
            let slot = if name.eq_ignore_ascii_case("br") {
                &mut weights.br
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                // `x-gzip` is gzip (RFC 9110 §8.4.1.3).
                &mut weights.gzip
            } else if name == "*" {
                &mut weights.star
            } else {
                continue;
            };
            // Named twice: the lower weight, so a `q=0` is never overridden.
            *slot = Some(slot.map_or(q, |old| old.min(q)));
        }
        weights
    }

    /// A coding the header does not name gets the weight of `*`, else none.
    fn br(&self) -> u16 {
        self.br.or(self.star).unwrap_or(0)
    }

    fn gzip(&self) -> u16 {
        self.gzip.or(self.star).unwrap_or(0)
    }
}

/// The item's weight from its parameters (`q=1` when it has none); `None` if malformed.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut q = Q_MAX;
    for param in params {
        let (key, value) = param.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            q = qvalue(value.trim())?;
        }
    }
    Some(q)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, digit| acc * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(Q_MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Available = Available {
        gzip: true,
        br: true,
    };

    fn pick(header: &str) -> Coding {
        negotiate(Some(header), BOTH)
    }

    #[test]
    fn without_the_header_the_raw_bytes_are_sent() {
        assert_eq!(negotiate(None, BOTH), Coding::Identity);
        assert_eq!(pick(""), Coding::Identity);
        assert_eq!(pick("identity"), Coding::Identity);
        assert_eq!(pick("deflate, zstd"), Coding::Identity);
    }

    #[test]
    fn brotli_is_preferred_then_gzip() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Coding::Br, "a browser's");
        assert_eq!(pick("br"), Coding::Br);
        assert_eq!(pick("gzip"), Coding::Gzip);
        assert_eq!(pick("GZip"), Coding::Gzip, "case-insensitive");
        assert_eq!(pick("x-gzip"), Coding::Gzip);
        assert_eq!(pick("*"), Coding::Br);
    }

    #[test]
    fn weights_are_respected() {
        assert_eq!(pick("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(pick("br;q=0.000, gzip;q=0.1"), Coding::Gzip);
        assert_eq!(pick("br;q=0, gzip;q=0"), Coding::Identity);
        assert_eq!(
            pick("gzip;q=1.0, br;q=0.5"),
            Coding::Gzip,
            "the higher weight"
        );
        assert_eq!(
            pick("gzip;q=0.5, br;q=0.5"),
            Coding::Br,
            "ties go to brotli"
        );
        assert_eq!(pick("*;q=0"), Coding::Identity);
        assert_eq!(
            pick("*, br;q=0"),
            Coding::Gzip,
            "`*` covers what is not named"
        );
        assert_eq!(
            pick("br, br;q=0, gzip"),
            Coding::Gzip,
            "named twice: the lower weight"
        );
        assert_eq!(
            pick("gzip ; q=0.8 , br ; Q=0.9"),
            Coding::Br,
            "spaces, case"
        );
    }

    #[test]
    fn malformed_weights_drop_their_item() {
        assert_eq!(pick("br;q=2, gzip"), Coding::Gzip);
        assert_eq!(pick("br;q=1.5, gzip"), Coding::Gzip);
        assert_eq!(pick("br;q=0.1234, gzip"), Coding::Gzip);
        assert_eq!(pick("br;q=x"), Coding::Identity);
        assert_eq!(pick("br;q"), Coding::Identity);
        assert_eq!(pick("br;q=-0"), Coding::Identity);
        assert_eq!(
            pick("br;level=5"),
            Coding::Br,
            "other parameters are ignored"
        );
    }

    #[test]
    fn only_codings_the_file_has_are_chosen() {
        let gzip_only = Available {
            gzip: true,
            br: false,
        };
        assert_eq!(negotiate(Some("br, gzip"), gzip_only), Coding::Gzip);
        assert_eq!(negotiate(Some("br"), gzip_only), Coding::Identity);
        assert_eq!(
            negotiate(Some("br, gzip"), Available::default()),
            Coding::Identity
        );
    }

    #[test]
    fn qvalues_parse_in_thousandths() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("0."), Some(0));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue(""), None);
        assert_eq!(qvalue(".5"), None);
    }
}

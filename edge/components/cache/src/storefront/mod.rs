//! The storefront's pure rules: which answer a request gets ([`route`]), which content
//! coding it is sent in ([`encoding`]), whether `If-None-Match` makes it a 304, and the
//! headers every storefront answer carries.
//!
//! The files themselves are embedded in the `tessera-storefront` component by its build
//! script (raw, gzip and brotli, each with its ETag); this module sees them only through a
//! [`Site`], so the rules are unit-tested natively on a made-up one.

pub mod encoding;
pub mod route;

pub use encoding::Coding;

use crate::etag;

/// The page and the favicon: revalidated on every use (their URLs never change, so a
/// cached copy must be checked against its ETag before it is used again).
pub const CACHE_CONTROL_PAGE: &str = "no-cache";
/// Assets under `/assets/<build_id>/`: the build id changes whenever any file changes, so
/// one URL always names the same bytes and may be kept for a year without asking.
pub const CACHE_CONTROL_ASSET: &str = "public, max-age=31536000, immutable";
/// The methods every storefront path answers (`Allow` of the 405).
pub const ALLOW: &str = "GET, HEAD";
/// The response depends on `Accept-Encoding`: shared caches must key on it.
pub const VARY: &str = "Accept-Encoding";

/// Where the app's files are allowed to come from: only this origin, no inline scripts or
/// styles (the app has none), no framing, no plugins; `data:` images for generated QR codes.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Sent with every storefront answer (pages, assets, 304s): the CSP above, no MIME
/// sniffing (a JSON or text file is never run as a script), no referrer to other sites,
/// a browsing context of its own, and the camera for the door scanner only.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(self), microphone=(), geolocation=()",
    ),
];

/// One representation of a file: its bytes and its strong ETag (quoted; the coding's
/// suffix, `-gz` or `-br`, inside the quotes, so no cache confuses two codings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: &'static [u8],
    pub etag: &'static str,
}

/// One file of the app, as embedded at build time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Relative to the app's folder, `/`-separated: `index.html`, `js/main.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub identity: Encoded,
    /// Kept only when smaller than the raw bytes.
    pub gzip: Option<Encoded>,
    /// Kept only when smaller than the raw bytes.
    pub br: Option<Encoded>,
}

impl Asset {
    /// The representation for `coding`, or the raw bytes when that coding was not kept.
    pub fn representation(&self, coding: Coding) -> (Coding, Encoded) {
        match coding {
            Coding::Br => self.br.map(|e| (Coding::Br, e)),
            Coding::Gzip => self.gzip.map(|e| (Coding::Gzip, e)),
            Coding::Identity => None,
        }
        .unwrap_or((Coding::Identity, self.identity))
    }

    /// The codings this file has, besides identity.
    pub fn available(&self) -> encoding::Available {
        encoding::Available {
            gzip: self.gzip.is_some(),
            br: self.br.is_some(),
        }
    }

    /// Whether `If-None-Match: header` names any representation of this file (all of them
    /// carry the same content, so a tag a client got in another coding is as good).
    pub fn not_modified(&self, if_none_match: &str) -> bool {
        [Some(self.identity), self.gzip, self.br]
            .into_iter()
            .flatten()
            .any(|encoded| etag::if_none_match(if_none_match, encoded.etag))
    }
}

/// The app as built: its build id and its files, sorted by path.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// 12 hex digits of a digest over every file: `/assets/<build_id>/` is the assets'
    /// URL prefix, so a new build never shares a URL with an old one.
    pub build_id: &'static str,
    /// Sorted by `path` (the build script sorts them; [`Site::asset`] searches).
    pub assets: &'static [Asset],
}

/// The page every client-side route answers with.
pub const INDEX: &str = "index.html";
/// What `/favicon.ico` answers with (browsers ask for it whatever the page links).
pub const FAVICON: &str = "favicon.svg";

impl Site {
    /// The file at `path` (relative to the app's folder), if the app has one.
    pub fn asset(&self, path: &str) -> Option<&'static Asset> {
        let assets: &'static [Asset] = self.assets;
        assets
            .binary_search_by(|asset| asset.path.cmp(path))
            .ok()
            .map(|i| &assets[i])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const INDEX_ASSET: Asset = Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        identity: Encoded {
            bytes: b"<!doctype html>",
            etag: "\"00000000000000aa\"",
        },
        gzip: Some(Encoded {
            bytes: b"gz",
            etag: "\"00000000000000aa-gz\"",
        }),
        br: Some(Encoded {
            bytes: b"br",
            etag: "\"00000000000000aa-br\"",
        }),
    };

    const fn plain(path: &'static str, etag: &'static str) -> Asset {
        Asset {
            path,
            content_type: "text/plain; charset=utf-8",
            identity: Encoded { bytes: b"x", etag },
            gzip: None,
            br: None,
        }
    }

    /// Sorted by path, as the build script writes it.
    pub(crate) const SITE: Site = Site {
        build_id: "0123456789ab",
        assets: &[
            plain("app.css", "\"00000000000000bb\""),
            plain("favicon.svg", "\"00000000000000cc\""),
            INDEX_ASSET,
            plain("js/main.js", "\"00000000000000dd\""),
            plain("js/views/event.js", "\"00000000000000ee\""),
        ],
    };

    #[test]
    fn files_are_found_by_exact_path_only() {
        assert_eq!(SITE.asset("js/main.js").map(|a| a.path), Some("js/main.js"));
        assert_eq!(SITE.asset(INDEX).map(|a| a.path), Some(INDEX));
        assert!(SITE.asset("js/main").is_none());
        assert!(SITE.asset("/js/main.js").is_none());
        assert!(SITE.asset("").is_none());
    }

    #[test]
    fn a_missing_coding_falls_back_to_the_raw_bytes() {
        let css = SITE.asset("app.css").unwrap();
        assert_eq!(css.representation(Coding::Br).0, Coding::Identity);
        assert_eq!(css.representation(Coding::Gzip).1, css.identity);
        assert_eq!(
            INDEX_ASSET.representation(Coding::Br),
            (Coding::Br, INDEX_ASSET.br.unwrap())
        );
        assert_eq!(
            INDEX_ASSET.representation(Coding::Gzip),
            (Coding::Gzip, INDEX_ASSET.gzip.unwrap())
        );
    }

    #[test]
    fn if_none_match_accepts_the_tag_of_any_coding() {
        for tag in [
            "\"00000000000000aa\"",
            "\"00000000000000aa-gz\"",
            "\"00000000000000aa-br\"",
        ] {
            assert!(INDEX_ASSET.not_modified(tag), "{tag}");
        }
        assert!(
            INDEX_ASSET.not_modified("W/\"00000000000000aa-br\""),
            "weak comparison"
        );
        assert!(
            INDEX_ASSET.not_modified("\"x\", \"00000000000000aa-gz\""),
            "a list"
        );
        assert!(INDEX_ASSET.not_modified("*"));
        assert!(!INDEX_ASSET.not_modified("\"00000000000000aa-zz\""));
        assert!(!INDEX_ASSET.not_modified("\"00000000000000bb\""));
        assert!(!INDEX_ASSET.not_modified(""));
        let css = SITE.asset("app.css").unwrap();
        assert!(
            !css.not_modified("\"00000000000000bb-br\""),
            "a coding the file does not have is no tag of it"
        );
    }
}

//! Which answer a storefront request gets, from its method and path alone (the query
//! string plays no part):
//!
//! | path | answer | `Cache-Control` |
//! | --- | --- | --- |
//! | `/assets/<build_id>/<file>` | the file | `public, max-age=31536000, immutable` |
//! | `/favicon.ico` | `favicon.svg` | `no-cache` |
//! | `/` and every client-side route | `index.html` | `no-cache` |
//! | anything else (`/v1/…`, `/admin/…`, another build's assets, `/robots.txt`) | 404 | |
//!
//! A client-side route is a path the app's router resolves in the browser: its first
//! segment is none of the server's ([`RESERVED_SEGMENTS`], [`RESERVED_PREFIXES`]) and its
//! last segment has no `.` (a file-like path missing from the app is a 404, not the page).
//! A path that resolves answers GET and HEAD, and 405 to any other method; one that does
//! not is 404 whatever the method (so unknown API paths stay `not_found`, as they were).
//!
//! Asset paths are looked up exactly, and only the characters the build script allows in
//! file names pass (ASCII letters, digits, `.`, `-`, `_`; no empty, `.` or `..` segment):
//! `%`-escapes, backslashes and traversal never resolve.

use super::{Asset, Site, CACHE_CONTROL_ASSET, CACHE_CONTROL_PAGE, FAVICON, INDEX};

/// First segments that belong to the server, never to the app: the API, the admin API,
/// the assets themselves.
pub const RESERVED_SEGMENTS: [&str; 3] = ["v1", "admin", "assets"];
/// Path prefixes of the operations and API documents (`/health`, `/metrics`,
/// `/openapi.json`), which must not be answered with a page.
pub const RESERVED_PREFIXES: [&str; 3] = ["/health", "/metrics", "/openapi"];
/// The prefix of the assets' immutable URLs (`/assets/<build_id>/<file>`).
const ASSETS_PREFIX: &str = "/assets/";
/// Browsers ask for it whatever the page links.
const FAVICON_PATH: &str = "/favicon.ico";
/// An asset path longer than this is no file of the app (the build script refuses
/// longer names), and is not looked at further.
pub const ASSET_PATH_BYTES_MAX: usize = 256;

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 200 (or 304) with the file.
    Serve {
        asset: &'static Asset,
        cache_control: &'static str,
    },
    /// 405 with `Allow: GET, HEAD`: the path resolves, the method is not a read.
    MethodNotAllowed,
    /// The problem+json 404 `not_found`.
    NotFound,
}

/// The answer to a request for `path_and_query`; `read` is whether the method is GET or
/// HEAD.
pub fn decide(site: &Site, read: bool, path_and_query: &str) -> Decision {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path);
    match (resolve(site, path), read) {
        (None, _) => Decision::NotFound,
        (Some(_), false) => Decision::MethodNotAllowed,
        (Some((asset, cache_control)), true) => Decision::Serve {
            asset,
            cache_control,
        },
    }
}

/// The file `path` names and its `Cache-Control`, if it names one.
fn resolve(site: &Site, path: &str) -> Option<(&'static Asset, &'static str)> {
    if path == FAVICON_PATH {
        return site.asset(FAVICON).map(|a| (a, CACHE_CONTROL_PAGE));
    }
    if let Some(rest) = path.strip_prefix(ASSETS_PREFIX) {
        let (build_id, file) = rest.split_once('/')?;
        if build_id != site.build_id || !is_safe_asset_path(file) {
            return None;
        }
        return site.asset(file).map(|a| (a, CACHE_CONTROL_ASSET));
    }
    if is_client_route(path) {
        return site.asset(INDEX).map(|a| (a, CACHE_CONTROL_PAGE));
    }
    None
}

/// Whether `path` is one the app's router handles in the browser (see the module doc).
/// Empty segments are refused but for one trailing `/`, so `//v1/x` is no page.
pub fn is_client_route(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if RESERVED_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return false;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return path == "/";
    }
    let mut segments = rest.split('/');
    let first = segments.clone().next().unwrap_or_default();
    if RESERVED_SEGMENTS.contains(&first) || segments.clone().any(str::is_empty) {
        return false;
    }
    segments.next_back().is_some_and(|last| !last.contains('.'))
}

/// Whether `file` can be an embedded file's path: the build script's alphabet, no empty,
/// `.` or `..` segment, bounded length.
pub fn is_safe_asset_path(file: &str) -> bool {
    !file.is_empty()
        && file.len() <= ASSET_PATH_BYTES_MAX
        && file.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(is_file_name_byte)
        })
}

/// The bytes the build script allows in the app's file names.
pub fn is_file_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

#[cfg(test)]
mod tests {
    use super::super::tests::{INDEX_ASSET, SITE};
    use super::*;

    fn get(path: &str) -> Decision {
        decide(&SITE, true, path)
    }

    fn served(path: &str) -> Option<(&'static str, &'static str)> {
        match get(path) {
            Decision::Serve {
                asset,
                cache_control,
            } => Some((asset.path, cache_control)),
            _ => None,
        }
    }

    #[test]
    fn pages_answer_with_the_index_and_are_revalidated() {
        for path in [
            "/",
            "/events",
            "/events/",
            "/events/0b7c3f7e-1d2e-4c5b-9a8f-000000000001",
            "/events/x/seats?zone=a",
            "/orders/abc?key=1#frag",
            "/?utm=x.y",
            "/V1/uppercase-is-not-the-api",
            "/events/caf%C3%A9",
            "/wealthy",
        ] {
            assert_eq!(served(path), Some((INDEX, CACHE_CONTROL_PAGE)), "{path}");
        }
        match get("/") {
            Decision::Serve { asset, .. } => assert_eq!(*asset, INDEX_ASSET),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_paths_and_file_like_paths_are_not_pages() {
        for path in [
            "/v1",
            "/v1/",
            "/v1/nope",
            "/v1/events/x/y",
            "/admin",
            "/admin/v1/events",
            "/assets",
            "/assets/",
            "/health",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/openapi",
            "/robots.txt",
            "/index.html",
            "/app.css",
            "/events/x.json",
            "/events/..",
            "//v1/nope",
            "/events//x",
            "",
            "events",
        ] {
            assert_eq!(get(path), Decision::NotFound, "{path}");
        }
    }

    #[test]
    fn assets_answer_under_the_current_build_id_only() {
        let url = |file: &str| format!("/assets/{}/{file}", SITE.build_id);
        assert_eq!(
            served(&url("js/main.js")),
            Some(("js/main.js", CACHE_CONTROL_ASSET))
        );
        assert_eq!(
            served(&(url("js/views/event.js") + "?v=1")),
            Some(("js/views/event.js", CACHE_CONTROL_ASSET))
        );
        assert_eq!(served(&url(INDEX)), Some((INDEX, CACHE_CONTROL_ASSET)));
        assert_eq!(get("/assets/ffffffffffff/js/main.js"), Decision::NotFound);
        assert_eq!(get("/assets/js/main.js"), Decision::NotFound);
        assert_eq!(get(&url("js/nope.js")), Decision::NotFound);
        assert_eq!(get(&url("js")), Decision::NotFound, "a folder");
    }

    #[test]
    fn traversal_and_escapes_never_resolve() {
        for file in [
            "js/../app.css",
            "./app.css",
            "js/./main.js",
            "js//main.js",
            "/app.css",
            "js/main.js/",
            "%2e%2e/app.css",
            "js%2fmain.js",
            "app%2Ecss",
            "js\\main.js",
            "",
        ] {
            let path = format!("/assets/{}/{file}", SITE.build_id);
            assert_eq!(get(&path), Decision::NotFound, "{path}");
        }
        assert!(!is_safe_asset_path(&"a".repeat(ASSET_PATH_BYTES_MAX + 1)));
        assert!(is_safe_asset_path("vendor/qrcode-generator/qrcode.mjs"));
    }

    #[test]
    fn the_favicon_is_served_as_its_svg() {
        assert_eq!(served("/favicon.ico"), Some((FAVICON, CACHE_CONTROL_PAGE)));
        let without = Site {
            build_id: SITE.build_id,
            assets: &[INDEX_ASSET],
        };
        assert_eq!(decide(&without, true, "/favicon.ico"), Decision::NotFound);
    }

    #[test]
    fn other_methods_are_405_where_a_read_would_answer_and_404_elsewhere() {
        let post = |path: &str| decide(&SITE, false, path);
        assert_eq!(post("/"), Decision::MethodNotAllowed);
        assert_eq!(post("/events/x"), Decision::MethodNotAllowed);
        assert_eq!(
            post(&format!("/assets/{}/app.css", SITE.build_id)),
            Decision::MethodNotAllowed
        );
        assert_eq!(post("/v1/nope"), Decision::NotFound);
        assert_eq!(post("/admin/nope"), Decision::NotFound);
        assert_eq!(post("/robots.txt"), Decision::NotFound);
    }

    #[test]
    fn a_site_without_an_index_serves_no_pages() {
        let empty = Site {
            build_id: SITE.build_id,
            assets: &[],
        };
        assert_eq!(decide(&empty, true, "/"), Decision::NotFound);
    }
}

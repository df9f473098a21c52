//! The storefront web app as the edge serves it: the real `storefront` component (the app
//! of `storefront/app/` embedded when it was built) on spin.toml's catch-all route, in a
//! `tessera-edge` process in front of a real ledger.
//!
//! Pages (`/`, client-side routes) are `index.html`, revalidated; the files it names, and
//! the modules those import, answer under `/assets/<build_id>/` with immutable caching, in
//! brotli, gzip or raw bytes as asked, each decoding to the raw bytes; ETags give 304s;
//! every answer carries the security headers; what is not the app stays a problem+json
//! 404 (405 for a write to a page). Run with `--nocapture` to see each file's sizes.

// Test code: an `expect` is an assertion, its message the failure report.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;
use sqlx::PgPool;

use tessera_testkit::edge::{EdgeNode, EdgeOptions, EDGE_KEY};
use tessera_testkit::ledger::spawn_app_with;
use tessera_testkit::raw_http::{get_request, Outcome, RawConnection};

const EDGE_BIN: &str = env!("CARGO_BIN_EXE_tessera-edge");
/// The policy the storefront sends, exactly.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Files a crawl of the app follows at most (it has tens).
const CRAWL_FILES_MAX: usize = 256;
/// Hex digits of the build id in asset URLs.
const BUILD_ID_LEN: usize = 12;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// One answer, read whole.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    fn problem(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a problem+json body")
    }
}

async fn request(node: &EdgeNode, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = node.client.request(method, node.url(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send().await.expect("request");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

async fn get(node: &EdgeNode, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(node, Method::GET, path, headers).await
}

/// The headers every storefront answer carries, exactly.
fn assert_security_headers(answer: &Answer, what: &str) {
    assert_eq!(
        answer.header("content-security-policy"),
        Some(CSP),
        "{what}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        answer.header("cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert_eq!(
        answer.header("permissions-policy"),
        Some("camera=(self), microphone=(), geolocation=()"),
        "{what}"
    );
}

/// `path` answers `index.html`: a page, revalidated with its ETag.
fn assert_page(answer: &Answer, path: &str) {
    assert_eq!(answer.status, 200, "{path}");
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{path}"
    );
    assert_eq!(answer.header("cache-control"), Some("no-cache"), "{path}");
    assert_eq!(answer.header("vary"), Some("Accept-Encoding"), "{path}");
    assert!(answer.header("etag").is_some(), "{path}");
    assert_security_headers(answer, path);
    let html = String::from_utf8_lossy(&answer.body);
    assert!(html.contains("<html"), "{path}: {html}");
    assert!(
        !html.contains("{{assets}}"),
        "{path}: the prefix was filled in"
    );
}

/// The `/assets/…` URLs an HTML page names in `href`/`src` attributes.
fn asset_urls_in_html(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (at, _) in html.match_indices(attribute) {
            let value = &html[at + attribute.len()..];
            let value = &value[..value.find('"').unwrap_or(value.len())];
            if value.starts_with("/assets/") {
                urls.push(value.to_owned());
            }
        }
    }
    urls
}

/// The relative modules a script imports (`from './x.js'`, `import('../y.mjs')`) and the
/// relative `url(…)`s of a style sheet: what the browser fetches next.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for opener in [
        "from '",
        "from \"",
        "import '",
        "import \"",
        "import('",
        "import(\"",
        "url(",
        "url('",
        "url(\"",
    ] {
        for (at, _) in text.match_indices(opener) {
            let rest = &text[at + opener.len()..];
            let end = rest.find(['\'', '"', ')', '\n']).unwrap_or(rest.len());
            let spec = &rest[..end];
            if spec.starts_with("./") || spec.starts_with("../") {
                found.push(spec.to_owned());
            }
        }
    }
    found
}

/// Every file reachable from the page: its asset URLs, then what each imports, by URL.
async fn crawl(node: &EdgeNode, html: &str) -> BTreeMap<String, Answer> {
    let base = Url::parse(&node.url("/")).expect("base url");
    let mut queue: VecDeque<String> = asset_urls_in_html(html).into();
    let mut seen = BTreeMap::new();
    while let Some(path) = queue.pop_front() {
        if seen.contains_key(&path) {
            continue;
        }
        assert!(
            seen.len() < CRAWL_FILES_MAX,
            "the crawl found too many files"
        );
        let answer = get(node, &path, &[]).await;
        assert_eq!(answer.status, 200, "{path}");
        let url = base.join(&path).expect("asset url");
        for spec in references(&String::from_utf8_lossy(&answer.body)) {
            queue.push_back(url.join(&spec).expect("import url").path().to_owned());
        }
        seen.insert(path, answer);
    }
    seen
}

/// The build id of asset URLs (`/assets/<build_id>/…`).
fn build_id(url: &str) -> &str {
    let id = url
        .strip_prefix("/assets/")
        .and_then(|rest| rest.split('/').next())
        .expect("an asset url");
    assert_eq!(id.len(), BUILD_ID_LEN, "{url}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
    id
}

fn expected_content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        other => panic!("{path}: no expected content type for {other:?}"),
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn pages_and_their_assets_are_served_with_immutable_urls(pool: PgPool) {
    let ledger = spawn_app_with(pool, &[("EDGE_KEY", EDGE_KEY.to_owned())]).await;
    let fixture = ledger.event_with_zone(10).await;
    let node = EdgeNode::start_for_test(EdgeOptions::for_app(EDGE_BIN, &ledger)).await;

    let index = get(&node, "/", &[]).await;
    assert_page(&index, "/");
    for path in [
        format!("/events/{}", fixture.event_id),
        "/events/anything/deeper?x=1".to_owned(),
        "/orders/".to_owned(),
    ] {
        let page = get(&node, &path, &[]).await;
        assert_page(&page, &path);
        assert_eq!(page.body, index.body, "{path}: the same page");
    }
    // The catch-all takes nothing from the API: the event itself is the catalog's JSON.
    let event = get(&node, &format!("/v1/events/{}", fixture.event_id), &[]).await;
    assert_eq!(event.status, 200);
    assert_eq!(event.header("content-type"), Some("application/json"));

    let html = String::from_utf8(index.body.clone()).expect("utf-8 page");
    let linked = asset_urls_in_html(&html);
    assert!(
        linked.iter().any(|u| u.ends_with(".css")) && linked.iter().any(|u| u.ends_with(".js")),
        "the page links its style sheet and script: {linked:?}"
    );
    let id = build_id(&linked[0]).to_owned();
    let files = crawl(&node, &html).await;
    for (path, answer) in &files {
        assert_eq!(build_id(path), id, "one build id: {path}");
        assert_eq!(
            answer.header("content-type"),
            Some(expected_content_type(path)),
            "{path}"
        );
        assert_eq!(answer.header("cache-control"), Some(IMMUTABLE), "{path}");
        assert_eq!(
            answer.header("content-encoding"),
            None,
            "{path}: none asked"
        );
        assert_security_headers(answer, path);
    }

    let favicon = get(&node, "/favicon.ico", &[]).await;
    assert_eq!(favicon.status, 200);
    assert_eq!(favicon.header("content-type"), Some("image/svg+xml"));
    let svg = get(&node, &format!("/assets/{id}/favicon.svg"), &[]).await;
    assert_eq!(favicon.body, svg.body, "/favicon.ico is the SVG");
    drop(node);
    ledger.stop().await;
}

/// The size of `answer`'s body if it came in `coding`, else `-` (not kept: not smaller).
fn size_in(answer: &Answer, coding: &str) -> String {
    match answer.header("content-encoding") {
        Some(sent) if sent == coding => answer.body.len().to_string(),
        _ => "-".to_owned(),
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli_decompressor::BrotliDecompress(&mut &bytes[..], &mut out).expect("valid brotli");
    out
}

/// `path` in each coding: brotli and gzip decode to the raw bytes, each has its own ETag,
/// and all vary on `Accept-Encoding`. Returns (raw, gzip, brotli) sizes for the report.
async fn assert_codings(node: &EdgeNode, path: &str) -> [String; 3] {
    let raw = get(node, path, &[]).await;
    let gzip = get(node, path, &[("accept-encoding", "gzip")]).await;
    let br = get(node, path, &[("accept-encoding", "gzip, deflate, br")]).await;
    let refused = get(node, path, &[("accept-encoding", "br;q=0, gzip;q=0")]).await;
    assert_eq!(raw.header("content-encoding"), None, "{path}");
    assert_eq!(refused.header("content-encoding"), None, "{path}: q=0");
    assert_eq!(refused.body, raw.body, "{path}");
    let tag = raw
        .header("etag")
        .expect("etag")
        .trim_matches('"')
        .to_owned();
    for (answer, coding, decode, suffix) in [
        (&gzip, "gzip", gunzip as fn(&[u8]) -> Vec<u8>, "gz"),
        (&br, "br", unbrotli, "br"),
    ] {
        assert_eq!(answer.header("vary"), Some("Accept-Encoding"), "{path}");
        let length: usize = answer
            .header("content-length")
            .expect("length")
            .parse()
            .expect("n");
        assert_eq!(length, answer.body.len(), "{path} {coding}");
        match answer.header("content-encoding") {
            Some(sent) => {
                assert_eq!(sent, coding, "{path}");
                assert_eq!(
                    decode(&answer.body),
                    raw.body,
                    "{path}: {coding} decodes to the raw bytes"
                );
                assert!(
                    answer.body.len() < raw.body.len(),
                    "{path}: kept only when smaller"
                );
                assert_eq!(
                    answer.header("etag"),
                    Some(format!("\"{tag}-{suffix}\"").as_str()),
                    "{path}"
                );
            }
            None => assert_eq!(answer.body, raw.body, "{path}: {coding} not kept"),
        }
    }
    [
        raw.body.len().to_string(),
        size_in(&gzip, "gzip"),
        size_in(&br, "br"),
    ]
}

#[tokio::test]
async fn files_come_in_the_coding_asked_for_and_revalidate_with_their_etags() {
    // No ledger needed: nothing here is forwarded.
    let channel = tessera_testkit::services::unique_channel();
    let node =
        EdgeNode::start_for_test(EdgeOptions::new(EDGE_BIN, "http://127.0.0.1:9", &channel)).await;
    let index = get(&node, "/", &[]).await;
    let html = String::from_utf8(index.body.clone()).expect("utf-8 page");
    let mut paths = vec!["/".to_owned()];
    paths.extend(crawl(&node, &html).await.into_keys());
    eprintln!("{:<60} {:>8} {:>8} {:>8}", "file", "raw", "gzip", "br");
    for path in &paths {
        let [raw, gzip, br] = assert_codings(&node, path).await;
        eprintln!("{path:<60} {raw:>8} {gzip:>8} {br:>8}");
    }
    // The page is large enough for both codings to be kept: each is sent when asked for.
    for coding in ["br", "gzip"] {
        let page = get(&node, "/", &[("accept-encoding", coding)]).await;
        assert_eq!(page.header("content-encoding"), Some(coding), "the page");
    }
    assert_revalidation(&node, "/", &index).await;
    let script = paths.iter().find(|p| p.ends_with(".js")).expect("a script");
    let raw_script = get(&node, script, &[]).await;
    assert_revalidation(&node, script, &raw_script).await;
}

/// `If-None-Match` with the ETag of any coding (strong, weak, in a list, `*`) gets a
/// bodiless 304 with the validators; another tag gets the file.
async fn assert_revalidation(node: &EdgeNode, path: &str, raw: &Answer) {
    let tag = raw.header("etag").expect("etag").to_owned();
    let br_tag = format!("{}-br\"", tag.trim_end_matches('"'));
    for (accept, if_none_match) in [
        ("", tag.clone()),
        ("br", tag.clone()),
        ("br", br_tag.clone()),
        ("", format!("W/{br_tag}")),
        ("gzip", format!("\"nope\", {tag}")),
        ("", "*".to_owned()),
    ] {
        let answer = get(
            node,
            path,
            &[
                ("accept-encoding", accept),
                ("if-none-match", &if_none_match),
            ],
        )
        .await;
        assert_eq!(answer.status, 304, "{path} {if_none_match}");
        assert!(answer.body.is_empty(), "{path}");
        assert!(answer.header("etag").is_some(), "{path}");
        assert_eq!(answer.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_eq!(
            answer.header("cache-control"),
            raw.header("cache-control"),
            "{path}"
        );
        assert_security_headers(&answer, path);
    }
    let other = get(node, path, &[("if-none-match", "\"0000000000000000\"")]).await;
    assert_eq!(
        (other.status, other.body.len()),
        (200, raw.body.len()),
        "{path}"
    );
}

#[tokio::test]
async fn what_is_not_the_app_is_a_problem() {
    let channel = tessera_testkit::services::unique_channel();
    let node =
        EdgeNode::start_for_test(EdgeOptions::new(EDGE_BIN, "http://127.0.0.1:9", &channel)).await;
    let html = String::from_utf8(get(&node, "/", &[]).await.body).expect("utf-8 page");
    let css = asset_urls_in_html(&html)
        .into_iter()
        .find(|u| u.ends_with(".css"))
        .expect("a style sheet");
    let file = css.splitn(4, '/').nth(3).expect("file part").to_owned();
    assert_eq!(get(&node, &css, &[]).await.status, 200);
    let id = build_id(&css);
    // Sent byte for byte: a URL library would resolve the dot segments before sending.
    for target in [
        format!("/assets/{id}/js/../{file}"),
        format!("/assets/{id}/js/%2e%2e/{file}"),
        format!("/assets/{id}/./{file}"),
        format!("/assets/{id}//{file}"),
        format!("/assets/{id}/{}", file.replace('.', "%2e")),
    ] {
        let answer = RawConnection::exchange(&node.authority, &get_request(target.as_bytes(), b""))
            .await
            .expect("an answer");
        assert_eq!(
            answer.outcome(),
            Outcome::Problem(404),
            "{target}: {answer:?}"
        );
        assert!(
            answer.body.contains("\"not_found\""),
            "{target}: {answer:?}"
        );
    }
    for path in [
        format!("/assets/000000000000/{file}"),
        format!("/assets/{id}/nope.css"),
        "/v1/nope".to_owned(),
        "/admin/nope".to_owned(),
        "/robots.txt".to_owned(),
        "/index.html".to_owned(),
    ] {
        let answer = get(&node, &path, &[]).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        assert_eq!(answer.problem()["code"], "not_found", "{path}");
    }
    let post = request(&node, Method::POST, "/v1/nope", &[]).await;
    assert_eq!(
        (post.status, post.problem()["code"].clone()),
        (404, "not_found".into())
    );

    for path in ["/", "/events/x", css.as_str()] {
        let answer = request(&node, Method::POST, path, &[]).await;
        assert_eq!(answer.status, 405, "{path}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{path}");
        assert_eq!(answer.problem()["code"], "method_not_allowed", "{path}");
        assert_security_headers(&answer, path);
    }

    let get_page = get(&node, "/", &[]).await;
    let head = request(&node, Method::HEAD, "/", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_eq!(
        head.header("content-length"),
        Some(get_page.body.len().to_string().as_str()),
        "HEAD announces the GET's length"
    );
    assert_eq!(head.header("etag"), get_page.header("etag"));
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

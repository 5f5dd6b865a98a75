//! The web pages castgate serves itself: the stream list (`/`), the broadcaster's page
//! (`/publish.html`), the viewer's page (`/watch.html`), their script and style, and the pinned
//! players under `/vendor/`. Everything is embedded from `player/` at build time, so a fresh
//! `cargo run --release` serves working pages with no internet and no CDN.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Our own pages change with each release: browsers revalidate them every time (cheap, with
    /// the ETag). The vendored players only change with their pinned version.
    cache_control: &'static str,
}

const REVALIDATE: &str = "no-cache";
const VENDOR: &str = "public, max-age=86400";
const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr, $cache:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/player/", $file)),
            cache_control: $cache,
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML, REVALIDATE),
    asset!("/index.html", "index.html", HTML, REVALIDATE),
    asset!("/index.js", "index.js", JS, REVALIDATE),
    asset!("/publish.html", "publish.html", HTML, REVALIDATE),
    asset!("/publish.js", "publish.js", JS, REVALIDATE),
    asset!("/watch.html", "watch.html", HTML, REVALIDATE),
    asset!("/watch.js", "watch.js", JS, REVALIDATE),
    asset!("/app.css", "app.css", CSS, REVALIDATE),
    asset!(
        "/vendor/hls.light.min.js",
        "vendor/hls.light.min.js",
        JS,
        VENDOR
    ),
    asset!(
        "/vendor/hls.js.LICENSE",
        "vendor/hls.js.LICENSE",
        TEXT,
        VENDOR
    ),
    asset!("/vendor/mpegts.js", "vendor/mpegts.js", JS, VENDOR),
    asset!(
        "/vendor/mpegts.js.LICENSE",
        "vendor/mpegts.js.LICENSE",
        TEXT,
        VENDOR
    ),
    asset!(
        "/vendor/mpegts.js.LICENSE.txt",
        "vendor/mpegts.js.LICENSE.txt",
        TEXT,
        VENDOR
    ),
];

/// Strong ETags (RFC 9110 §8.8.3), one per asset, computed once: a 64-bit FNV-1a of the body.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let hash = a.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a valid header")
        })
        .collect()
});

/// The page routes, to merge into the app's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS
        .iter()
        .enumerate()
        .fold(Router::new(), |router, (index, asset)| {
            router.route(
                asset.path,
                get(move |headers: HeaderMap| async move { serve(index, &headers) }),
            )
        })
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let headers = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(asset.cache_control),
        ),
    ];
    // RFC 9110 §13.1.2: If-None-Match is a list of entity tags, or "*".
    let matches = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes());
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        routes::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn pages_scripts_and_players_have_their_content_types_and_cache_rules() {
        for (path, content_type, cache) in [
            ("/", "text/html; charset=utf-8", "no-cache"),
            ("/publish.html", "text/html; charset=utf-8", "no-cache"),
            ("/watch.html", "text/html; charset=utf-8", "no-cache"),
            ("/watch.js", "text/javascript; charset=utf-8", "no-cache"),
            ("/app.css", "text/css; charset=utf-8", "no-cache"),
            (
                "/vendor/hls.light.min.js",
                "text/javascript; charset=utf-8",
                "public, max-age=86400",
            ),
            (
                "/vendor/mpegts.js",
                "text/javascript; charset=utf-8",
                "public, max-age=86400",
            ),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                content_type,
                "{path}"
            );
            assert_eq!(header_of(&response, header::CACHE_CONTROL), cache, "{path}");
            assert_eq!(
                header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
        }
    }

    #[tokio::test]
    async fn revalidation_with_the_etag_answers_304_without_a_body() {
        let first = get("/watch.html", None).await;
        let etag = header_of(&first, header::ETAG).to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        // Browsers send the tag back as they got it, possibly among others.
        let list = format!("\"0000000000000000\", {etag}");
        let again = get("/watch.html", Some(&list)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&again, header::ETAG), etag);
        let body = to_bytes(again.into_body(), 1 << 20).await.unwrap();
        assert!(body.is_empty());
        // Another file's tag does not match.
        let other = get("/publish.html", Some(&etag)).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    /// Every `src="/..."` and `href="/..."` in our pages names a file we serve: a page that
    /// loads a missing script would only fail in a browser.
    #[tokio::test]
    async fn every_local_script_and_stylesheet_a_page_names_is_served() {
        for page in ["/", "/publish.html", "/watch.html"] {
            let body = to_bytes(get(page, None).await.into_body(), 1 << 20)
                .await
                .unwrap();
            let html = String::from_utf8(body.to_vec()).unwrap();
            let mut named = 0;
            for attribute in ["src=\"/", "href=\"/"] {
                for (at, _) in html.match_indices(attribute) {
                    let start = at + attribute.len() - 1;
                    let end = start + html[start..].find('"').unwrap();
                    let path = &html[start..end];
                    let response = get(path, None).await;
                    assert_eq!(response.status(), StatusCode::OK, "{page} names {path}");
                    named += 1;
                }
            }
            assert!(named >= 2, "{page} names only {named} local files");
        }
    }

    #[tokio::test]
    async fn the_vendored_players_are_served_with_their_licences() {
        for (path, needle) in [
            ("/vendor/hls.js.LICENSE", "Apache License"),
            ("/vendor/mpegts.js.LICENSE", "Apache License"),
        ] {
            let body = to_bytes(get(path, None).await.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(
                String::from_utf8_lossy(&body).contains(needle),
                "{path} has no {needle:?}"
            );
        }
    }
}

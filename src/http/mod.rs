//! The HTTP face of castgate (axum): WHIP ingest, HLS, HTTP-FLV, the JSON API.
//! [`app`] builds the router so tests can drive it without a socket.

mod api;
mod error;
mod flv;
mod hls;
mod pages;
pub mod tls;
mod whip;

pub use error::ApiError;
pub use whip::ice_server_links;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::Config;
use crate::hub::{valid_stream_name, Hub};
use crate::ingest::Ingest;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub ingest: Ingest,
}

/// The whole router.
pub fn app(state: AppState) -> Router {
    let whip = Router::new()
        .route("/whip/{stream}", post(whip::publish))
        .route(
            "/whip/{stream}/{session}",
            delete(whip::delete).patch(whip::patch),
        )
        .layer(DefaultBodyLimit::max(whip::MAX_OFFER_BYTES));
    Router::new()
        .merge(whip)
        .merge(hls::routes())
        .merge(pages::routes())
        .route("/flv/{file}", get(flv::play))
        .route("/api/streams", get(api::streams))
        .route("/healthz", get(api::healthz))
        .layer(cors(&state.config))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            whip_options,
        ))
        .with_state(state)
}

/// OPTIONS on a WHIP endpoint (preflight or not, both are answered by the CORS layer) says what
/// a POST there takes (RFC 9725 §4.1), and which STUN/TURN servers to use (§4.6): a client
/// must configure its ICE agent before it makes the offer, so the `Link` headers of the 201
/// come too late for it. The servers' credentials are only given to a request that may
/// publish (a browser's preflight carries no token, so it gets none when a token is set).
async fn whip_options(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let whip_options =
        request.method() == Method::OPTIONS && request.uri().path().starts_with("/whip/");
    let may_publish = whip_options && whip::authorize(&state, request.headers()).is_ok();
    let mut response = next.run(request).await;
    if whip_options {
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static("accept-post"),
            HeaderValue::from_static("application/sdp"),
        );
        if may_publish {
            for link in ice_server_links(&state.config.webrtc.ice_servers) {
                if let Ok(value) = HeaderValue::from_str(&link) {
                    headers.append(header::LINK, value);
                }
            }
        }
    }
    response
}

fn cors(config: &Config) -> CorsLayer {
    let origins = &config.http.cors_allow_origins;
    let allow_origin = if origins.is_empty() || origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            HeaderName::from_static("accept-post"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Checks a stream name from a URL.
fn stream_name(name: &str) -> Result<&str, ApiError> {
    if valid_stream_name(name) {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "stream names are 1-64 characters of A-Z a-z 0-9 _ -",
        ))
    }
}

#[cfg(test)]
mod hls_tests;
#[cfg(test)]
mod tests;

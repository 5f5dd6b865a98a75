//! WHIP endpoints (RFC 9725): `POST /whip/{stream}` answers an offer, `PATCH` on the session
//! URL trickles the publisher's candidates, `DELETE` ends the publish, `OPTIONS` says what the
//! endpoint accepts.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{stream_name, ApiError, AppState};
use crate::config::IceServer;
use crate::ingest::sdpfrag::{check_if_match, PatchKind, Precondition, SdpFrag};

/// Largest SDP offer accepted; real offers are a few KiB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

pub async fn publish(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let name = stream_name(&name)?;
    if !is_sdp(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "WHIP offers must be sent as Content-Type: application/sdp",
        ));
    }
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("malformed SDP offer: not UTF-8"))?;
    let answer = state.ingest.publish(name, offer).await?;
    let location = format!("/whip/{name}/{}", answer.session_id);
    let mut response = (
        StatusCode::CREATED,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            ),
            (header::LOCATION, header_value(&location)?),
            (header::ETAG, header_value(&answer.etag)?),
        ],
        answer.sdp,
    )
        .into_response();
    for link in ice_server_links(&state.config.webrtc.ice_servers) {
        response
            .headers_mut()
            .append(header::LINK, header_value(&link)?);
    }
    Ok(response)
}

pub async fn delete(
    State(state): State<AppState>,
    Path((name, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers)?;
    let name = stream_name(&name)?;
    state.ingest.delete(name, &session)?;
    Ok(StatusCode::OK)
}

/// `PATCH` on a session (RFC 9725 §4.3): a trickle-ice-sdpfrag with more of the publisher's
/// candidates is added to its connection (204). Checked in this order, and nothing changes
/// unless every check passes: the session exists (404), the body is a trickle fragment (415)
/// that parses (400), `If-Match` names the session (428 without, 412 stale). A fragment with
/// new credentials is an ICE restart (§4.3.2): answered 200 with our new credentials and
/// candidates, and a new ETag.
pub async fn patch(
    State(state): State<AppState>,
    Path((name, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let name = stream_name(&name)?;
    let Some(session) = state.ingest.session(name, &session) else {
        return Err(ApiError::not_found("no such WHIP session"));
    };
    if !has_content_type(&headers, TRICKLE_FRAG) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "WHIP PATCH bodies must be sent as Content-Type: application/trickle-ice-sdpfrag",
        ));
    }
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("malformed SDP fragment: not UTF-8"))?;
    let frag = SdpFrag::parse(body)
        .map_err(|e| ApiError::bad_request(format!("malformed SDP fragment: {e}")))?;
    let _serialized = session.patch_guard().await;
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    match check_if_match(if_match, &session.etag()) {
        Ok(()) => {}
        Err(Precondition::Required) => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "a WHIP PATCH must carry If-Match with the session's ETag",
            ))
        }
        Err(Precondition::Failed) => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not name this session's current ETag",
            ))
        }
    }
    if PatchKind::of(&frag, &session.remote_ufrag()) == PatchKind::Restart {
        let restarted = state.ingest.restart_ice(&session, frag).await?;
        return Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(TRICKLE_FRAG)),
                (header::ETAG, header_value(&restarted.etag)?),
            ],
            restarted.fragment,
        )
            .into_response());
    }
    state.ingest.trickle(&session, &frag).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

const TRICKLE_FRAG: &str = "application/trickle-ice-sdpfrag";

/// Checks the Bearer token when one is configured (RFC 6750; compared in constant time).
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.config.http.publish_token.as_deref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "publishing needs a valid token: Authorization: Bearer <token>",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"castgate\"")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_sdp(headers: &HeaderMap) -> bool {
    has_content_type(headers, "application/sdp")
}

/// Whether the request's media type (parameters aside) is `media_type`.
fn has_content_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "invalid header value"))
}

/// `Link` header values advertising STUN/TURN servers (RFC 9725 §4.6).
pub fn ice_server_links(servers: &[IceServer]) -> Vec<String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut links = Vec::new();
    for server in servers {
        for url in &server.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(user), Some(cred)) = (&server.username, &server.credential) {
                link.push_str(&format!(
                    "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    quote(user),
                    quote(cred)
                ));
            }
            links.push(link);
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_for_stun_and_turn() {
        let servers = vec![
            IceServer {
                urls: vec!["stun:stun.example.net:3478".into()],
                ..Default::default()
            },
            IceServer {
                urls: vec!["turn:turn.example.net:3478?transport=udp".into()],
                username: Some("user".into()),
                credential: Some("pa\"ss".into()),
            },
        ];
        assert_eq!(
            ice_server_links(&servers),
            vec![
                "<stun:stun.example.net:3478>; rel=\"ice-server\"".to_string(),
                "<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\"user\"; credential=\"pa\\\"ss\"; credential-type=\"password\"".to_string(),
            ]
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
    }

    #[test]
    fn content_type_check() {
        let mut h = HeaderMap::new();
        assert!(!is_sdp(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/SDP; charset=utf-8"),
        );
        assert!(is_sdp(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_sdp(&h));
    }
}

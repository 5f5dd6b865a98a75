//! The publisher's STUN/TURN servers: what [`super::PublishOptions`] names, and what a WHIP
//! endpoint advertises in `Link: <url>; rel="ice-server"` headers (RFC 9725 §4.6), parsed here.

use reqwest::header::{HeaderMap, LINK};

/// One STUN or TURN server for the publisher's ICE agent: its URLs (`stun:`, `turn:`, `turns:`,
/// RFC 7064/7065) and, for TURN, the long-term credentials (RFC 8489 §9.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The ICE servers of every `Link` header with `rel="ice-server"` in `headers`, in order, one
/// per link. Links of other relations, and ones that do not parse, are left out.
pub fn ice_servers_from_links(headers: &HeaderMap) -> Vec<IceServer> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_links)
        .filter_map(|link| parse_link(&link))
        .collect()
}

/// Splits one `Link` field value into its links (RFC 8288 §3: comma-separated, but a comma may
/// also stand inside `<...>` or a quoted string).
fn split_links(value: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut current = String::new();
    let (mut in_uri, mut in_quote, mut escaped) = (false, false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' if !in_uri => in_quote = !in_quote,
            '<' if !in_quote => in_uri = true,
            '>' if !in_quote => in_uri = false,
            ',' if !in_uri && !in_quote => {
                links.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    links.push(current);
    links
}

/// `<url>; rel="ice-server"; username="..."; credential="..."` to an [`IceServer`].
fn parse_link(link: &str) -> Option<IceServer> {
    let link = link.trim();
    let rest = link.strip_prefix('<')?;
    let (url, params) = rest.split_once('>')?;
    let mut server = IceServer {
        urls: vec![url.trim().to_string()],
        ..IceServer::default()
    };
    let mut is_ice_server = false;
    for (name, value) in parse_params(params)? {
        match name.to_ascii_lowercase().as_str() {
            // rel is a space-separated list of relation types (RFC 8288 §3.3).
            "rel" => {
                is_ice_server = value
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("ice-server"))
            }
            "username" => server.username = value,
            "credential" => server.credential = value,
            _ => {}
        }
    }
    is_ice_server.then_some(server)
}

/// The `; name=value` parameters after a link's URL; values may be tokens or quoted strings.
/// `None` when a quoted string is not closed.
fn parse_params(params: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = params.chars().peekable();
    loop {
        // Up to the next parameter.
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return None;
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        out.push((name.trim().to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn turn_link_with_quoted_credentials() {
        let h = headers(&[
            r#"<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="u;1"; credential="p\"a,ss"; credential-type="password""#,
        ]);
        assert_eq!(
            ice_servers_from_links(&h),
            vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                username: "u;1".into(),
                credential: "p\"a,ss".into(),
            }]
        );
    }

    #[test]
    fn several_links_in_one_field_and_across_fields() {
        let h = headers(&[
            r#"<stun:stun.example.net>; rel=ice-server, <https://example.net/doc>; rel="help""#,
            r#"<turn:turn.example.net:3478>; rel="ice-server"; username=u; credential=p"#,
        ]);
        let servers = ice_servers_from_links(&h);
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert_eq!(servers[0].urls, vec!["stun:stun.example.net".to_string()]);
        assert_eq!(servers[0].username, "");
        assert_eq!(servers[1].username, "u");
        assert_eq!(servers[1].credential, "p");
    }

    #[test]
    fn other_relations_and_broken_links_are_left_out() {
        let h = headers(&[
            r#"<turn:a.example>; rel="next""#,
            r#"turn:b.example; rel="ice-server""#,
            r#"<turn:c.example>; rel="ice-server"; credential="unclosed"#,
        ]);
        assert_eq!(ice_servers_from_links(&h), Vec::<IceServer>::new());
    }

    /// What castgate's own endpoint writes (`http::ice_server_links`) reads back the same.
    #[test]
    fn reads_what_castgate_advertises() {
        let configured = crate::config::IceServer {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            username: Some("pub\\lisher".into()),
            credential: Some("se\"cret".into()),
        };
        let links = crate::http::ice_server_links(std::slice::from_ref(&configured));
        let h = headers(&links.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            ice_servers_from_links(&h),
            vec![IceServer {
                urls: configured.urls.clone(),
                username: "pub\\lisher".into(),
                credential: "se\"cret".into(),
            }]
        );
    }
}

//! A minimal Chrome DevTools Protocol client for the browser tests: just enough WebSocket
//! (RFC 6455, client side: masked text frames out, unmasked frames in) over a tokio TCP stream
//! to open tabs (optionally with a script run before the page's own), evaluate JavaScript,
//! resize the viewport and take screenshots. No crate beyond what castgate already uses, so CI
//! needs nothing more than Chromium.
//!
//! Commands are sequential: each call sends one command and reads messages until its answer,
//! skipping the events Chromium sends meanwhile.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Cdp {
    stream: BufReader<TcpStream>,
    next_id: u64,
}

/// One tab, attached with a flat session (`Target.attachToTarget`, `flatten: true`).
#[derive(Clone, Debug)]
pub struct Tab {
    pub session: String,
}

impl Cdp {
    /// Connects to the browser endpoint Chromium writes to `DevToolsActivePort` in its profile
    /// when started with `--remote-debugging-port=0`.
    pub async fn connect(profile: &Path, limit: Duration) -> Cdp {
        let file = profile.join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + limit;
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(port) = port.trim().parse::<u16>() {
                        break (port, path.trim().to_string());
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Chromium wrote no {} within {limit:?}",
                file.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("connect to DevTools on port {port}: {e}"));
        tcp.set_nodelay(true).ok();
        let mut stream = BufReader::new(tcp);
        // RFC 6455 §4.1: the key is any 16 bytes, base64. The answer's accept hash is not
        // checked: this is a test talking to a local Chromium.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: Y2FzdGdhdGUtdGVzdC1rZXk=\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("send WebSocket handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = stream.read_u8().await.expect("read WebSocket handshake");
            head.push(byte);
            assert!(head.len() < 8192, "WebSocket handshake answer too long");
        }
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "DevTools refused the WebSocket: {head}"
        );
        Cdp { stream, next_id: 1 }
    }

    /// Sends `method` (to `tab`, or to the browser) and waits for its result; panics on a
    /// protocol error.
    pub async fn call(
        &mut self,
        tab: Option<&Tab>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(tab) = tab {
            message["sessionId"] = tab.session.clone().into();
        }
        self.send(message.to_string().as_bytes()).await;
        let reply = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let text = self.receive().await;
                let value: serde_json::Value =
                    serde_json::from_slice(&text).expect("DevTools sends JSON");
                if value["id"] == id {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} within 30 s"));
        if let Some(error) = reply.get("error") {
            panic!("{method} failed: {error}");
        }
        reply["result"].clone()
    }

    /// Opens `url` in a new tab (its own window, so no tab is in the background) and attaches.
    pub async fn open(&mut self, url: &str) -> Tab {
        let target = self
            .call(
                None,
                "Target.createTarget",
                serde_json::json!({ "url": url, "newWindow": true }),
            )
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        Tab {
            session: attached["sessionId"]
                .as_str()
                .expect("attachToTarget gives a sessionId")
                .to_string(),
        }
    }

    /// Opens `url` in a new tab as [`Cdp::open`] does, with `script` evaluated in the page before
    /// any of its own scripts (`Page.addScriptToEvaluateOnNewDocument`).
    pub async fn open_with_script(&mut self, url: &str, script: &str) -> Tab {
        let tab = self.open("about:blank").await;
        self.call(Some(&tab), "Page.enable", serde_json::json!({}))
            .await;
        self.call(
            Some(&tab),
            "Page.addScriptToEvaluateOnNewDocument",
            serde_json::json!({ "source": script }),
        )
        .await;
        self.call(
            Some(&tab),
            "Page.navigate",
            serde_json::json!({ "url": url }),
        )
        .await;
        tab
    }

    /// Evaluates a JavaScript expression in the tab and returns its value (promises awaited).
    pub async fn eval(&mut self, tab: &Tab, expression: &str) -> serde_json::Value {
        let result = self
            .call(
                Some(tab),
                "Runtime.evaluate",
                serde_json::json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Sets the tab's viewport (CSS pixels), as a phone when `mobile`.
    pub async fn viewport(&mut self, tab: &Tab, width: u32, height: u32, mobile: bool) {
        self.call(
            Some(tab),
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": if mobile { 2 } else { 1 },
                "mobile": mobile,
            }),
        )
        .await;
    }

    /// A PNG of the tab's viewport, written to `file`.
    pub async fn screenshot(&mut self, tab: &Tab, file: &Path) {
        let shot = self
            .call(
                Some(tab),
                "Page.captureScreenshot",
                serde_json::json!({ "format": "png" }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        std::fs::write(file, png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    async fn send(&mut self, payload: &[u8]) {
        // RFC 6455 §5.2: FIN + text opcode; client frames are masked.
        let mut frame = vec![0x81];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xffff {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .get_mut()
            .write_all(&frame)
            .await
            .expect("send to DevTools");
    }

    /// The next whole text message (fragments joined; control frames skipped).
    async fn receive(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        loop {
            let first = self.stream.read_u8().await.expect("read from DevTools");
            let second = self.stream.read_u8().await.expect("read from DevTools");
            let len = match second & 0x7f {
                126 => u64::from(self.stream.read_u16().await.expect("frame length")),
                127 => self.stream.read_u64().await.expect("frame length"),
                n => u64::from(n),
            };
            assert!(second & 0x80 == 0, "DevTools sent a masked frame");
            let mut payload = vec![0; usize::try_from(len).expect("frame fits in memory")];
            self.stream
                .read_exact(&mut payload)
                .await
                .expect("read frame payload");
            let opcode = first & 0x0f;
            if opcode >= 0x8 {
                assert!(opcode != 0x8, "DevTools closed the WebSocket");
                continue; // ping/pong
            }
            message.extend_from_slice(&payload);
            if first & 0x80 != 0 {
                return message;
            }
        }
    }
}

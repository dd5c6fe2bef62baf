//! A raw HTTP/1.1 client over TCP: sends request targets byte for byte, unlike URL-normalising clients.
//!
//! reqwest (through the `url` crate) resolves `..` and re-encodes paths, so a hostile target
//! would never reach the server as written; this client writes it verbatim.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::HANG_GUARD;

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET {target} HTTP/1.1` with `Connection: close` and reads the whole answer.
pub async fn raw_get(addr: SocketAddr, target: &str) -> RawResponse {
    raw_request(addr, "GET", target, &[]).await
}

/// Sends one request with `target` written verbatim and extra header lines, and reads the answer.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(HANG_GUARD, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer from {addr} to {method} {}", shorten(target)))
        .unwrap_or_else(|e| panic!("{method} {} to {addr}: {e}", shorten(target)));
    parse(&raw, method == "HEAD")
        .unwrap_or_else(|e| panic!("bad answer to {method} {}: {e}", shorten(target)))
}

/// Sends `request` byte for byte, for requests a server may refuse before reading them whole
/// (huge heads): a write cut short or a reset after the answer arrived is not an error.
///
/// `Ok(None)` when the connection closed without any answer; `Err` when the answer is malformed
/// or none came within the hang guard.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Result<Option<RawResponse>, String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut reader, mut writer) = stream.into_split();
        let request = request.to_vec();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            // Kept open until the answer is read: a half-closed socket is itself a signal.
            writer
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        writing.abort();
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(HANG_GUARD, exchange)
        .await
        .map_err(|_| format!("no answer from {addr} within {HANG_GUARD:?}"))??;
    if raw.is_empty() {
        return Ok(None);
    }
    let head = request.starts_with(b"HEAD ");
    parse(&raw, head).map(Some)
}

/// A target cut to a readable length for messages (the 10 KB one would drown them).
pub fn shorten(target: &str) -> String {
    if target.len() <= 120 {
        target.to_owned()
    } else {
        let cut = target
            .char_indices()
            .nth(100)
            .map(|(i, _)| i)
            .unwrap_or(target.len());
        format!("{}... ({} bytes)", &target[..cut], target.len())
    }
}

fn parse(raw: &[u8], head: bool) -> Result<RawResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of header")?;
    let head_text = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head || status == 304 || status == 204 {
        Vec::new()
    } else if chunked {
        dechunk(rest)?
    } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        if rest.len() < len {
            return Err(format!("body cut short: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

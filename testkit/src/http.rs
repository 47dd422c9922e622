//! Requests whose refusal the server may send before it has read the body.
//!
//! A server that answers `413` (or `401`) to a large upload and closes
//! without reading the rest is within HTTP/1.1; a client that writes the
//! whole body before reading (reqwest, hyper) may then see a broken pipe or
//! a reset instead of the answer. [`send_refused`] writes and reads at the
//! same time over a raw connection, so the answer is read whenever the
//! server sent one. [`refused_before_body`] asks first
//! (`Expect: 100-continue`, as curl does for large bodies): a refusal made
//! on the headers alone is then always read, and a server that wanted the
//! body answers `100`.

use std::net::SocketAddr;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request_line` (`"PUT /path?query"`) with `headers` (`name: value`
/// lines) and `body`; returns the status (`0` when the server closed
/// without answering) and the whole answer as text.
pub async fn send_refused(addr: SocketAddr, request_line: &str, headers: &[String], body: Vec<u8>) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let mut head =
        format!("{request_line} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        if write.write_all(head.as_bytes()).await.is_ok() {
            let _ = write.write_all(&body).await;
        }
    });
    let mut answer = Vec::new();
    let _ = read.read_to_end(&mut answer).await;
    writer.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// Sends only the head of a `body_len`-byte request with
/// `Expect: 100-continue` and returns the first answer's status and text:
/// `100` means the server asked for the body, anything else is its answer
/// on the headers alone.
pub async fn refused_before_body(
    addr: SocketAddr,
    request_line: &str,
    headers: &[String],
    body_len: usize,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut head = format!(
        "{request_line} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {body_len}\r\nexpect: 100-continue\r\nconnection: close\r\n"
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write the head");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    // Until the server closes, or sends an interim `100` and waits.
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            if answer.starts_with(b"HTTP/1.1 100") && answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

//! Guest stdout/stderr, forwarded line by line to the host's logs.
//!
//! Output is bounded per call: past [`MAX_BYTES`] it is dropped (with one
//! warning), so a chatty or hostile component cannot flood the logs.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const MAX_BYTES: usize = 64 * 1024;
const MAX_LINE: usize = 4096;

#[derive(Clone)]
pub struct GuestOutput {
    inner: Arc<Mutex<Buffer>>,
}

struct Buffer {
    stream: &'static str,
    component: String,
    request_id: String,
    pending: Vec<u8>,
    written: usize,
    truncated: bool,
}

impl GuestOutput {
    pub fn new(stream: &'static str, component: &str, request_id: &str) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Buffer {
                stream,
                component: component.to_string(),
                request_id: request_id.to_string(),
                pending: Vec::new(),
                written: 0,
                truncated: false,
            })),
        }
    }
}

impl Buffer {
    fn write(&mut self, bytes: &[u8]) {
        if self.written >= MAX_BYTES {
            if !self.truncated {
                self.truncated = true;
                tracing::warn!(component = %self.component, request_id = %self.request_id, stream = self.stream, "guest output over {MAX_BYTES} bytes; dropping the rest");
            }
            return;
        }
        let take = bytes.len().min(MAX_BYTES - self.written);
        self.written += take;
        self.pending.extend_from_slice(&bytes[..take]);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        tracing::info!(target: "polyscale::guest", component = %self.component, request_id = %self.request_id, stream = self.stream, line = ?text);
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

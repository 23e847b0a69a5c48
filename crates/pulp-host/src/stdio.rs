//! Guest stdout and stderr as log lines tagged with the plugin's name (ABI §2),
//! split at newlines, with control characters escaped ([`pulp_ext::log_text`]) so
//! that guest output cannot forge the host's lines.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use pulp_ext::wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use pulp_ext::wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line kept; longer output is split.
const MAX_LINE: usize = 8 * 1024;

/// A WASI output stream that logs each line at `info` (stdout) or `warn` (stderr).
#[derive(Clone)]
pub(crate) struct LogStream(Arc<Inner>);

struct Inner {
    plugin: String,
    stderr: bool,
    line: Mutex<Vec<u8>>,
}

impl LogStream {
    pub(crate) fn new(plugin: &str, stderr: bool) -> LogStream {
        LogStream(Arc::new(Inner {
            plugin: plugin.to_string(),
            stderr,
            line: Mutex::new(Vec::new()),
        }))
    }

    fn write(&self, mut bytes: &[u8]) {
        let mut line = self.0.line.lock().unwrap_or_else(|p| p.into_inner());
        while !bytes.is_empty() {
            let nl = bytes.iter().position(|&b| b == b'\n');
            let take = nl.map_or(bytes.len(), |i| i + 1);
            line.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if nl.is_some() || line.len() >= MAX_LINE {
                self.emit(&line);
                line.clear();
            }
        }
    }

    fn emit(&self, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let text = pulp_ext::log_text(raw.strip_suffix(b"\r").unwrap_or(raw));
        let plugin = self.0.plugin.as_str();
        if self.0.stderr {
            tracing::warn!(target: "pulp::plugin", plugin, stream = "stderr", "{text}");
        } else {
            tracing::info!(target: "pulp::plugin", plugin, stream = "stdout", "{text}");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let line = std::mem::take(self.line.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !line.is_empty() {
            LogStream(Arc::new(Inner {
                plugin: std::mem::take(&mut self.plugin),
                stderr: self.stderr,
                line: Mutex::new(Vec::new()),
            }))
            .emit(&line);
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LogStream::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[pulp_ext::wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        LogStream::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

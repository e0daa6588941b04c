//! The hot path for plain-HTTP targets: HTTP/1.1 connections driven by
//! hyper directly, kept in a small idle list.
//!
//! reqwest's generic pool (URL re-parsing, tower services, a keyed pool,
//! proxy matching) costs more CPU per request than the rest of the
//! generator; a load generator talks to one origin, so this pool holds
//! ready connections to that one host, checks one out per request and puts
//! it back when the response body has been read to its end. A connection
//! whose response was not read to the end (a cut, a timeout, a cancel) is
//! dropped, which closes it, as HTTP/1.1 requires. TLS targets use reqwest.
//!
//! Reconnects. A server may advertise keep-alive and close the connection
//! anyway (llama.cpp's server does after every streamed response), or close
//! it when its idle timeout passes. The next request meant for that
//! connection then finds it closed, either in the idle list or right after
//! writing its request (EOF or a reset before any byte of an answer). As
//! curl and browsers do, such a request is sent once more on a fresh
//! connection: a *reconnect*, not an error. A connection put back after an
//! answer that said `Connection: close` was announced, and is not kept.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection: its request handle and the bytes read on it so far.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    read: Arc<AtomicU64>,
}

/// Connections to one `host:port`.
pub struct Pool {
    host: String,
    port: u16,
    /// Idle connections, one list per worker thread (index 0: any other
    /// thread), so a connection stays on the runtime that drives it.
    idle: Vec<Mutex<Vec<Conn>>>,
    max_idle: usize,
    connect_timeout: Duration,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// An answer's head, with the connection it came on.
pub struct Sent {
    pub response: Response<hyper::body::Incoming>,
    pub conn: Conn,
    /// The request found its kept-alive connection closed by the server and
    /// went out again on a fresh one.
    pub reconnect: bool,
}

impl Pool {
    /// `host` as in a URL (`[::1]` for IPv6 literals); at most `max_idle`
    /// connections are kept (0: none, each closes after its answer).
    pub fn new(host: &str, port: u16, max_idle: usize, connect_timeout: Duration) -> Self {
        Pool {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            idle: (0..=crate::worker::count())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            max_idle,
            connect_timeout,
        }
    }

    /// Send the request `make` builds (origin-form URI, `Host` set) on an
    /// idle connection, or a new one. A kept-alive connection that turns out
    /// closed before any byte of an answer arrived costs a fresh connection
    /// (`reconnect`), never an error; `make` is called again for it.
    pub async fn send(&self, make: impl Fn() -> Request<Full<Bytes>>) -> Result<Sent, SendError> {
        let mut found_closed = false;
        let mut req = make();
        loop {
            let pooled = self.shard().lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut conn) = pooled else { break };
            if conn.sender.is_closed() || conn.sender.ready().await.is_err() {
                found_closed = true;
                continue;
            }
            let read_before = conn.read.load(Ordering::Relaxed);
            match conn.sender.try_send_request(req).await {
                Ok(response) => {
                    return Ok(Sent {
                        response,
                        conn,
                        reconnect: false,
                    })
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closing.
                    Some(back) => {
                        req = back;
                        found_closed = true;
                    }
                    None => {
                        let err = e.into_error();
                        if conn.read.load(Ordering::Relaxed) != read_before
                            || !closed_before_answer(&err)
                        {
                            return Err(SendError::Http(err));
                        }
                        // Written, then EOF or a reset with no answer: the
                        // server had closed the connection.
                        found_closed = true;
                        req = make();
                        break;
                    }
                },
            }
        }
        let mut conn = self.connect().await?;
        let response = conn.sender.send_request(req).await?;
        Ok(Sent {
            response,
            conn,
            reconnect: found_closed,
        })
    }

    /// Return a connection whose last answer was read to its end. One the
    /// server said it would close (`Connection: close`) is not kept; one it
    /// closed anyway goes back too, so that the request that finds it
    /// closed counts a reconnect.
    pub fn put_back(&self, conn: Conn, keep_alive: bool) {
        if !keep_alive {
            return;
        }
        let mut idle = self.shard().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    fn shard(&self) -> &Mutex<Vec<Conn>> {
        &self.idle[crate::worker::current() % self.idle.len()]
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let addr = format!("{}:{}", self.host, self.port);
        let fail = |e: String| SendError::Connect(addr.clone(), e);
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| fail(format!("timed out after {:?}", self.connect_timeout)))?
        .map_err(|e| fail(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        let read = Arc::new(AtomicU64::new(0));
        let io = Counted {
            inner: stream,
            read: read.clone(),
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or every sender
            // is dropped; its errors reach the request that saw them.
            let _ = conn.await;
        });
        Ok(Conn { sender, read })
    }
}

/// Whether a send failed because the connection was closed under it (EOF
/// or a reset) rather than for anything the server answered.
pub fn closed_before_answer(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
            // An io::Error wrapping another: its `source` skips the wrapped
            // error itself.
            if let Some(inner) = io.get_ref() {
                if closed_before_answer(inner) {
                    return true;
                }
            }
        }
        cur = err.source();
    }
    false
}

/// A TCP stream that counts the bytes read from it: a failure with none
/// read since the request was written had no answer at all.
struct Counted {
    inner: tokio::net::TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_or_reset_is_a_closed_connection_and_nothing_else_is() {
        use std::io::{Error, ErrorKind};
        for kind in [
            ErrorKind::ConnectionReset,
            ErrorKind::BrokenPipe,
            ErrorKind::ConnectionAborted,
            ErrorKind::UnexpectedEof,
        ] {
            assert!(closed_before_answer(&Error::from(kind)), "{kind:?}");
        }
        // Found anywhere in the chain of sources.
        let wrapped = Error::other(Error::from(ErrorKind::ConnectionReset));
        assert!(closed_before_answer(&wrapped));
        for kind in [
            ErrorKind::TimedOut,
            ErrorKind::ConnectionRefused,
            ErrorKind::InvalidData,
        ] {
            assert!(!closed_before_answer(&Error::from(kind)), "{kind:?}");
        }
    }
}

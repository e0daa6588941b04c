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

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub type Sender = SendRequest<Full<Bytes>>;

/// Connections to one `host:port`.
pub struct Pool {
    host: String,
    port: u16,
    /// Idle connections, one list per worker thread (index 0: any other
    /// thread), so a connection stays on the runtime that drives it.
    idle: Vec<Mutex<Vec<Sender>>>,
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

impl Pool {
    /// `host` as in a URL (`[::1]` for IPv6 literals).
    pub fn new(host: &str, port: u16, max_idle: usize, connect_timeout: Duration) -> Self {
        Pool {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            idle: (0..=crate::executor::workers::default_count())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            max_idle: max_idle.max(1),
            connect_timeout,
        }
    }

    /// Send `req` (origin-form URI, `Host` set) on an idle connection, or a
    /// new one. A request that an idle connection could not take (closed by
    /// the server meanwhile) is sent again on another: it was never written.
    pub async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<hyper::body::Incoming>, Sender), SendError> {
        loop {
            let pooled = self.shard().lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut sender) = pooled else { break };
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        let resp = sender.send_request(req).await?;
        Ok((resp, sender))
    }

    /// Return a connection whose last response was read to the end.
    pub fn put_back(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.shard().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }

    fn shard(&self) -> &Mutex<Vec<Sender>> {
        &self.idle[crate::executor::workers::current() % self.idle.len()]
    }

    async fn connect(&self) -> Result<Sender, SendError> {
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
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends when the server closes it or every sender
            // is dropped; its errors reach the request that saw them.
            let _ = conn.await;
        });
        Ok(sender)
    }
}

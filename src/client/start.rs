//! One request on the wire: [`Client::start`] sends it over the run's
//! transport (periscope's HTTP/1.1 pool or reqwest) and returns its
//! answer's head and its body, decoded as it arrives; which failures are
//! errors of which class, and when a request may go out twice.

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::HeaderValue;
use reqwest::Method;

use super::{decode, error_chain, h1, Client, Expect, Prepared, Transport, TRACEPARENT};
use crate::record::{ErrorClass, ServerTiming, TraceIds};

impl Client {
    /// Send the request; on an answer, its status, body and (on the hyper
    /// path) the connection to give back once the body is read, and whether
    /// it had to be sent again on a fresh connection (a reconnect).
    pub(super) async fn start(
        &self,
        req: &Prepared,
        trace: Option<TraceIds>,
        side: bool,
    ) -> Result<Started, (ErrorClass, String)> {
        let traceparent = trace.and_then(|t| HeaderValue::from_str(&t.traceparent()).ok());
        let connect = |e: String| (ErrorClass::Connect, e);
        match &self.transport {
            Transport::Grpc(_) => Err(connect(
                "an OTLP/gRPC target answers trace exports only".into(),
            )),
            Transport::H1 {
                pool,
                side: side_pool,
                base_path,
                origin,
                headers,
            } => {
                let pool = if side { side_pool } else { pool };
                self.start_h1(req, pool, base_path, origin, headers, traceparent)
                    .await
            }
            Transport::Reqwest { http, next, urls } => {
                self.start_reqwest(req, http, next, urls, traceparent).await
            }
        }
    }

    /// On the HTTP/1.1 client: the request written whole on a pooled
    /// connection, the answer's head parsed, the body read as it comes.
    async fn start_h1(
        &self,
        req: &Prepared,
        pool: &std::sync::Arc<h1::Pool>,
        base_path: &str,
        origin: &str,
        headers: &[u8],
        traceparent: Option<HeaderValue>,
    ) -> Result<Started, (ErrorClass, String)> {
        let connect = |e: String| (ErrorClass::Connect, e);
        let path = req.path.as_ref();
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(connect(format!("bad path '{path}': it has a space")));
        }
        let wire = h1_request(req, path, base_path, origin, headers, traceparent.as_ref());
        let replayable = replayable(
            &req.method,
            memchr::memmem::find(headers, b"idempotency-key:").is_some(),
        );
        let sent = pool
            .send(&wire, req.method == Method::HEAD, replayable)
            .await
            .map_err(|e| {
                let class = match &e {
                    h1::SendError::Dns(..) => ErrorClass::Dns,
                    h1::SendError::Lost(_) => ErrorClass::ConnectionLost,
                    _ => ErrorClass::Connect,
                };
                (class, e.to_string())
            })?;
        drop(wire);
        let status = sent.head.status;
        let headers = server_headers(sent.head.headers());
        let coding = sent
            .head
            .headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"content-encoding"))
            .map(|(_, v)| v.to_vec());
        let body = futures_util::stream::unfold(sent.body, |mut b| async move {
            b.next().await.map(|item| (item, b))
        });
        Ok(Started {
            status,
            body: decode::Body::new(Box::pin(body), coding.as_deref()),
            reconnect: sent.reconnect,
            headers,
            http2: false,
        })
    }

    /// On reqwest's client (TLS, HTTP/2, https:// proxies).
    async fn start_reqwest(
        &self,
        req: &Prepared,
        http: &[reqwest::Client],
        next: &std::sync::atomic::AtomicUsize,
        urls: &[(&'static str, reqwest::Url)],
        traceparent: Option<HeaderValue>,
    ) -> Result<Started, (ErrorClass, String)> {
        let connect = |e: String| (ErrorClass::Connect, e);
        let http = match http.len() {
            1 => &http[0],
            n => &http[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n],
        };
        let url = match urls.iter().find(|(p, _)| *p == req.path.as_ref()) {
            Some((_, u)) => u.clone(),
            None => match req.path.strip_prefix('/') {
                Some(_) => {
                    let mut u =
                        reqwest::Url::parse(&self.base).map_err(|e| connect(e.to_string()))?;
                    u.set_path(&req.path);
                    u
                }
                None => reqwest::Url::parse(&format!("{}/{}", self.base, req.path))
                    .map_err(|e| connect(format!("bad URL: {e}")))?,
            },
        };
        let send = || {
            let mut builder = http
                .request(req.method.clone(), url.clone())
                .body(req.body.clone());
            if let Some(tp) = &traceparent {
                builder = builder.header(TRACEPARENT, tp.clone());
            }
            if let Some((name, value)) = &req.session {
                builder = builder.header(name.clone(), value.clone());
            }
            builder.send()
        };
        // reqwest replaces pooled connections it finds closed before
        // writing on its own. One that closes after the request was
        // written, with no byte of an answer, cannot be told apart
        // here from a server that read the request (reqwest shows
        // neither the connection's age nor what was acknowledged),
        // so curl's rule holds: sent once more, on another
        // connection; closed again so, it is lost.
        let lost =
            |e: &reqwest::Error| !e.is_connect() && !e.is_timeout() && h1::closed_before_answer(e);
        let (resp, reconnect) = match send().await {
            Ok(r) => (r, false),
            Err(e) if lost(&e) => (send().await.map_err(|e| reqwest_failure(&e))?, true),
            Err(e) => return Err(reqwest_failure(&e)),
        };
        let status = resp.status().as_u16();
        let http2 = resp.version() == reqwest::Version::HTTP_2;
        let headers = server_headers(
            resp.headers()
                .iter()
                .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
        );
        let coding = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .map(|v| v.as_bytes().to_vec());
        let body = resp.bytes_stream().map(|r| r.map_err(|e| error_chain(&e)));
        Ok(Started {
            status,
            body: decode::Body::new(Box::pin(body), coding.as_deref()),
            reconnect,
            headers,
            http2,
        })
    }

    /// POST `body` to `path` (from the origin's root when it starts with
    /// `/`) and read the whole answer, unmeasured: for what the run asks
    /// the server besides its load (its `/tokenize`).
    pub async fn post_raw(&self, path: &'static str, body: Bytes) -> Result<(u16, Bytes), String> {
        let req = Prepared::post(path, body, Expect::Status);
        let call = async {
            let mut s = self.start(&req, None, true).await.map_err(|(_, m)| m)?;
            let bytes = read_all(&mut s.body).await.map_err(|(_, m)| m)?;
            Ok((s.status, bytes))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer from {path} within --timeout {:?}", self.timeout))?
    }
}

/// Whether a request may go out twice (RFC 9110's idempotent methods, or a
/// POST with an `Idempotency-Key`): only such a request is sent again when
/// a kept-alive connection closes after it was written.
fn replayable(method: &Method, has_idempotency_key: bool) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || has_idempotency_key
}

/// The class and message of a request reqwest could not get an answer to.
fn reqwest_failure(e: &reqwest::Error) -> (ErrorClass, String) {
    let msg = error_chain(e);
    let class = if e.is_connect() && msg.contains("dns error") {
        ErrorClass::Dns
    } else if !e.is_connect() && h1::closed_before_answer(e) {
        ErrorClass::ConnectionLost
    } else {
        ErrorClass::Connect
    };
    let msg = match class {
        ErrorClass::ConnectionLost => format!(
            "{msg}: the connection closed after the request was written, before any byte of an answer, on its second try"
        ),
        _ => msg,
    };
    (class, msg)
}

/// An answer's head: what [`Client::start`] returns.
pub(super) struct Started {
    pub(super) status: u16,
    /// The body, decoded; on the HTTP/1.1 path, its connection goes back
    /// to the pool when the body has been read to its end.
    pub(super) body: decode::Body,
    /// The request went out again on a fresh connection.
    pub(super) reconnect: bool,
    /// Timings the server put in its headers (TGI's `x-queue-time`, …).
    pub(super) headers: Option<ServerTiming>,
    /// The answer came over HTTP/2.
    pub(super) http2: bool,
}

/// TGI's timing headers: `x-queue-time`, `x-inference-time` (ms) and
/// `x-generated-tokens`, from an answer's headers in one pass; None when
/// the answer carries none.
fn server_headers<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Option<ServerTiming> {
    let (mut queue, mut inference, mut generated) = (None, None, None);
    for (name, value) in headers {
        if name.len() < 12 || !name[..2].eq_ignore_ascii_case(b"x-") {
            continue;
        }
        let slot = match &name[2..] {
            n if n.eq_ignore_ascii_case(b"queue-time") => &mut queue,
            n if n.eq_ignore_ascii_case(b"inference-time") => &mut inference,
            n if n.eq_ignore_ascii_case(b"generated-tokens") => &mut generated,
            _ => continue,
        };
        if slot.is_none() {
            *slot = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok());
        }
    }
    if queue.is_none() && inference.is_none() {
        return None;
    }
    Some(ServerTiming {
        queue_ms: queue,
        inference_ms: inference,
        output_tokens: generated.map(|n| n as u32),
        ..ServerTiming::default()
    })
}

/// Read a body to its end, decoded.
pub(super) async fn read_all(body: &mut decode::Body) -> Result<Bytes, (ErrorClass, String)> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if chunk.is_empty() {
            continue;
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}

/// A request as the HTTP/1.1 client writes it: the request line (the whole
/// URL through a proxy), the client's headers, the length, the trace and
/// session headers, the body.
fn h1_request(
    req: &Prepared,
    path: &str,
    base_path: &str,
    origin: &str,
    headers: &[u8],
    traceparent: Option<&HeaderValue>,
) -> Vec<u8> {
    let mut wire = Vec::with_capacity(headers.len() + req.body.len() + 128);
    wire.extend_from_slice(req.method.as_str().as_bytes());
    wire.push(b' ');
    if path.starts_with('/') {
        wire.extend_from_slice(origin.as_bytes());
    } else {
        wire.extend_from_slice(base_path.as_bytes());
        wire.push(b'/');
    }
    wire.extend_from_slice(path.as_bytes());
    wire.extend_from_slice(b" HTTP/1.1\r\n");
    wire.extend_from_slice(headers);
    if !req.body.is_empty() || !matches!(req.method, Method::GET | Method::HEAD) {
        wire.extend_from_slice(b"content-length: ");
        wire.extend_from_slice(req.body.len().to_string().as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    if let Some(tp) = &traceparent {
        wire.extend_from_slice(b"traceparent: ");
        wire.extend_from_slice(tp.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    if let Some((name, value)) = &req.session {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(&req.body);
    wire
}

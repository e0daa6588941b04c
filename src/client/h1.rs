//! The hot path for plain-HTTP targets: periscope's own HTTP/1.1 client, a
//! connection per request in flight, kept in a small idle list.
//!
//! Why not hyper here. hyper drives each connection from a task of its own
//! and hands requests and body chunks over channels: for a stream of small
//! SSE events that is two task wake-ups and a channel hop per event, and
//! some 26 KB per connection (a 32-slot request channel, 8 KB read and
//! 8 KB header buffers). A load generator talks to one origin with one
//! request per connection at a time, so here the request's own task writes
//! the request and reads the answer from the socket: one read buffer per
//! connection (4 KB, more only while a long body is read), heads parsed by
//! `httparse`, bodies framed by `Content-Length`, chunked encoding or the
//! connection's close. Chunks are handed over as they are read (`Bytes`
//! split from the read buffer: no copy). TLS targets use reqwest.
//!
//! Framing follows RFC 9112 (6.3): a Transfer-Encoding overrides any
//! Content-Length (read to the close when its last coding is not chunked;
//! the connection is not reused when both were given), Content-Length
//! values that disagree are an error, and a 101 no request asked for ends
//! the connection with an error. Names with several addresses are
//! connected to as RFC 8305 has it ([`dial::happy_eyeballs`]).
//!
//! A connection goes back to the idle list when its answer was read to its
//! end and the server keeps it; one whose answer was not read to the end (a
//! cut, a timeout, a cancel) is dropped, which closes it, as HTTP/1.1
//! requires.
//!
//! Reconnects. A server may advertise keep-alive and close the connection
//! anyway (llama.cpp's server does after every streamed response), or close
//! it when its idle timeout passes. The next request meant for that
//! connection then finds it closed, either in the idle list or right after
//! writing its request (EOF or a reset before any byte of an answer). As
//! curl and browsers do, such a request is sent once more on a fresh
//! connection: a *reconnect*, not an error — when nothing of it had gone
//! out, when the server's TCP acknowledged none of it (Linux's
//! `tcpi_bytes_acked`: a server that had closed the connection before the
//! request came answers it with a bare reset, so it cannot have read it),
//! when the connection had carried an answer less than [`AFTER_ANSWER`]
//! before (a server that closes after its answers closes it before the
//! next request can reach it; on the mock, more than half of such closes
//! arrive only after the next request was written), or when the request
//! is idempotent (`replayable`: a GET, or one with an `Idempotency-Key`).
//! A POST the server may have read is not sent again: it may have started
//! on it. It fails as [`SendError::Lost`], saying how much of it went out
//! and was acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::dial::{bytes_acked, happy_eyeballs};

/// What one read asks the socket for, at least.
const READ_SIZE: usize = 4096;
/// A body of known length is read this much at a time, at most.
const LONG_READ: usize = 64 * 1024;
/// A read buffer larger than this is not kept with an idle connection.
const KEEP_BUFFER: usize = 16 * 1024;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most headers a response head may have.
const MAX_HEADERS: usize = 100;

/// A kept-alive connection found closed this soon after its last answer
/// was closed by a server that closes after its answers, before the next
/// request could reach it: that request is sent again.
const AFTER_ANSWER: Duration = Duration::from_secs(1);

/// A connection and the bytes read from it and not yet used.
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// When its last answer was read to its end (an idle connection).
    answered: Option<std::time::Instant>,
}

/// Connections to one `host:port`.
pub struct Pool {
    host: String,
    port: u16,
    /// Idle connections, one list per worker thread (index 0: any other
    /// thread), so a connection stays on the runtime that registered it.
    idle: Vec<Mutex<Vec<Conn>>>,
    max_idle: usize,
    connect_timeout: Duration,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    /// The name did not resolve.
    #[error("resolve {0}: {1}")]
    Dns(String, String),
    /// The connection closed before any byte of an answer, with the
    /// request (or part of it) written.
    #[error("{0}")]
    Lost(String),
    #[error("{0}")]
    Io(String),
}

/// An answer's head.
pub struct Head {
    pub status: u16,
    /// The server keeps the connection for another request.
    pub keep_alive: bool,
    /// The head as it came, for the few headers the caller reads.
    raw: Bytes,
}

impl Head {
    /// Its headers as they came: name and value (trimmed), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.raw.split(|b| *b == b'\n').skip(1).filter_map(|line| {
            let colon = memchr::memchr(b':', line)?;
            Some((&line[..colon], line[colon + 1..].trim_ascii()))
        })
    }

    /// The value of the first header called `name` (any case).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// An answer: its head, its body and whether the request had to go out
/// again on a fresh connection.
pub struct Sent {
    pub head: Head,
    pub body: Body,
    pub reconnect: bool,
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (a HEAD request, 1xx, 204, 304).
    Empty,
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    Eof,
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of the chunk's data are still to come.
    Data(u64),
    /// The CRLF after a chunk's data is next.
    DataEnd,
    /// The trailer lines after the last chunk, up to an empty line.
    Trailers,
}

/// What the chunked decoder made of the bytes it has.
#[derive(Debug)]
enum Step {
    Data(Bytes),
    NeedMore,
    Done,
    Bad(String),
}

/// A response body, read chunk by chunk from its connection.
pub struct Body {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
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

    /// Send `request` (a whole HTTP/1.1 request: head and body) on an idle
    /// connection, or a new one, and read the answer's head. A kept-alive
    /// connection that turns out closed before any byte of an answer
    /// arrived costs a fresh connection (`reconnect`), never an error.
    /// `head_only`: the request was a HEAD (its answer has no body).
    /// `replayable`: it may be sent twice (idempotent), so a kept-alive
    /// connection that closes after it was written costs a reconnect, not
    /// an error.
    pub async fn send(
        self: &Arc<Self>,
        request: &[u8],
        head_only: bool,
        replayable: bool,
    ) -> Result<Sent, SendError> {
        let mut found_closed = false;
        while let Some(mut conn) = self.pop() {
            if !conn.open() {
                found_closed = true;
                continue;
            }
            match conn.exchange(request, head_only).await {
                Ok((head, framing)) => return Ok(self.sent(conn, head, framing, false)),
                // EOF or a reset with no answer: the server had closed the
                // connection. Nothing of the request reached it, or it may
                // go out twice: again on a fresh one.
                Err(Failure::Closed { written, acked, .. })
                    if written == 0
                        || acked == Some(0)
                        || replayable
                        || conn.answered.is_some_and(|t| t.elapsed() < AFTER_ANSWER) =>
                {
                    found_closed = true;
                    break;
                }
                Err(Failure::Closed {
                    why,
                    written,
                    acked,
                }) => {
                    return Err(SendError::Lost(lost(
                        &why,
                        written,
                        acked,
                        request.len(),
                        true,
                    )))
                }
                Err(Failure::Other(e)) => return Err(SendError::Io(e)),
            }
        }
        let mut conn = self.connect().await?;
        match conn.exchange(request, head_only).await {
            Ok((head, framing)) => Ok(self.sent(conn, head, framing, found_closed)),
            Err(Failure::Closed {
                why,
                written,
                acked,
            }) => Err(SendError::Lost(lost(
                &why,
                written,
                acked,
                request.len(),
                false,
            ))),
            Err(Failure::Other(e)) => Err(SendError::Io(e)),
        }
    }

    fn sent(self: &Arc<Self>, conn: Conn, head: Head, framing: Framing, reconnect: bool) -> Sent {
        let keep_alive = head.keep_alive && framing != Framing::Eof;
        Sent {
            head,
            body: Body {
                conn: Some(conn),
                framing,
                keep_alive,
                pool: self.clone(),
            },
            reconnect,
        }
    }

    /// Close every idle connection (the load is over): their sockets and
    /// read buffers go back now, not when the client is dropped.
    pub fn close_idle(&self) {
        for shard in &self.idle {
            std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }

    fn pop(&self) -> Option<Conn> {
        self.shard().lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Keep a connection whose last answer was read to its end.
    fn put_back(&self, mut conn: Conn) {
        if conn.buf.capacity() > KEEP_BUFFER {
            conn.buf = BytesMut::new();
        }
        conn.answered = Some(std::time::Instant::now());
        let mut idle = self.shard().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    fn shard(&self) -> &Mutex<Vec<Conn>> {
        &self.idle[crate::worker::current() % self.idle.len()]
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let at = || format!("{}:{}", self.host, self.port);
        let fail = |e: String| SendError::Connect(at(), e);
        let late = || format!("timed out after {:?}", self.connect_timeout);
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let addrs = tokio::time::timeout_at(
            deadline,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| SendError::Dns(at(), late()))?
        .map_err(|e| SendError::Dns(at(), e.to_string()))?;
        let io = tokio::time::timeout_at(deadline, happy_eyeballs(addrs.collect()))
            .await
            .map_err(|_| fail(late()))?
            .map_err(|e| fail(e.to_string()))?;
        io.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        Ok(Conn {
            io,
            buf: BytesMut::new(),
            answered: None,
        })
    }
}

/// Why an exchange failed: the connection was closed before any byte of
/// an answer (worth a fresh connection), or anything else.
enum Failure {
    /// EOF or a reset before any byte of an answer; `written`: how much
    /// of the request had gone out; `acked`: how much of it the server's
    /// TCP acknowledged (None where the kernel does not say).
    Closed {
        why: String,
        written: usize,
        acked: Option<u64>,
    },
    Other(String),
}

/// What [`SendError::Lost`] says: how far the request got.
fn lost(why: &str, written: usize, acked: Option<u64>, len: usize, kept_alive: bool) -> String {
    let conn = if kept_alive {
        "a kept-alive connection"
    } else {
        "a new connection"
    };
    let how_far = if written < len {
        format!("while the request was being written ({written} of {len} bytes)")
    } else {
        format!("after the whole request ({len} bytes) was written")
    };
    let acked = match acked {
        Some(n) => format!(" (the server acknowledged {n} of its bytes)"),
        None => String::new(),
    };
    format!(
        "{why}: {conn} closed {how_far}{acked}, before any byte of an answer; not sent again, as the server may have started on it"
    )
}

impl Conn {
    /// Whether an idle connection is still open: nothing to read from it
    /// yet (EOF or stray bytes mean it is not usable).
    fn open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Write the request and read the answer's head (past any 1xx).
    async fn exchange(
        &mut self,
        request: &[u8],
        head_only: bool,
    ) -> Result<(Head, Framing), Failure> {
        let acked_before = bytes_acked(&self.io);
        let acked = |io: &TcpStream| {
            bytes_acked(io)
                .zip(acked_before)
                .map(|(now, before)| now.saturating_sub(before))
        };
        let mut written = 0;
        while written < request.len() {
            match self.io.write(&request[written..]).await {
                Ok(0) => {
                    return Err(Failure::Closed {
                        why: "the connection took no more bytes".into(),
                        written,
                        acked: acked(&self.io),
                    })
                }
                Ok(n) => written += n,
                Err(e) if is_closed(&e) => {
                    return Err(Failure::Closed {
                        why: format!("sending the request: {e}"),
                        written,
                        acked: acked(&self.io),
                    })
                }
                Err(e) => return Err(Failure::Other(format!("sending the request: {e}"))),
            }
        }
        let mut answered = false;
        loop {
            if let Some((head, framing)) = self.parse_head(head_only).map_err(Failure::Other)? {
                if head.status == 101 {
                    // No request here asks to upgrade: what follows is not
                    // HTTP, and the connection is dropped with this error.
                    return Err(Failure::Other(
                        "the server switched protocols (101) though no upgrade was asked".into(),
                    ));
                }
                if (100..200).contains(&head.status) {
                    answered = true;
                    continue;
                }
                return Ok((head, framing));
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(Failure::Other(format!(
                    "the response head is longer than {MAX_HEAD} bytes"
                )));
            }
            let read = self.fill(READ_SIZE).await;
            let nothing = !answered && self.buf.is_empty();
            match read {
                Ok(0) if nothing => {
                    return Err(Failure::Closed {
                        why: "the server closed the connection (EOF)".into(),
                        written,
                        acked: acked(&self.io),
                    })
                }
                Err(e) if nothing && is_closed(&e) => {
                    return Err(Failure::Closed {
                        why: format!("the connection was reset ({e})"),
                        written,
                        acked: acked(&self.io),
                    })
                }
                Ok(0) => {
                    return Err(Failure::Other(
                        "the server closed the connection in the middle of the response head"
                            .into(),
                    ))
                }
                Ok(_) => answered = true,
                Err(e) => return Err(Failure::Other(format!("reading the response: {e}"))),
            }
        }
    }

    /// Read what the socket has into the buffer, with room for `want`
    /// bytes (what is left of a body of known length, up to [`LONG_READ`]:
    /// one read where the server sent it all); 0 at EOF.
    async fn fill(&mut self, want: usize) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// The head at the start of the buffer, taken out of it, when it is all
    /// there.
    fn parse_head(&mut self, head_only: bool) -> Result<Option<(Head, Framing)>, String> {
        let mut headers =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            &self.buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(format!(
                    "the answer has more than {MAX_HEADERS} header fields"
                ))
            }
            Err(e) => return Err(format!("the server's answer is not HTTP/1.1: {e}")),
        };
        let status = resp.code.unwrap_or(0);
        let f = Fields::of(resp.headers);
        let keep_alive = match resp.version {
            Some(1) => !f.close,
            _ => f.keep && !f.close,
        };
        let framing = if head_only || (100..200).contains(&status) || status == 204 || status == 304
        {
            Framing::Empty
        } else {
            f.framing()?
        };
        // A Transfer-Encoding beside a Content-Length may be an attempt to
        // smuggle a second answer: the body is framed by the former, and
        // the connection is not used again (RFC 9112, 6.3).
        let keep_alive = keep_alive && !(f.coded && f.length.is_some());
        let raw = self.buf.split_to(len).freeze();
        Ok(Some((
            Head {
                status,
                keep_alive,
                raw,
            },
            framing,
        )))
    }
}

/// What a response head's fields say about its framing and connection.
#[derive(Debug, Default)]
struct Fields {
    /// `Content-Length`, every one alike.
    length: Option<u64>,
    /// What is wrong with the `Content-Length`s, if anything: an error
    /// only where the length frames the body (no Transfer-Encoding).
    bad_length: Option<String>,
    /// A `Transfer-Encoding` was given.
    coded: bool,
    /// Its last coding, across all its fields, is `chunked`.
    chunked: bool,
    close: bool,
    keep: bool,
}

impl Fields {
    fn of(headers: &[httparse::Header]) -> Fields {
        let mut f = Fields::default();
        for h in headers {
            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                // `5, 5` or two fields of 5 are one length; two lengths are
                // no framing at all (RFC 9112, 6.3).
                for part in v.split(',').map(str::trim) {
                    let n = part
                        .parse::<u64>()
                        .ok()
                        .filter(|_| part.bytes().all(|b| b.is_ascii_digit()));
                    match (n, f.length) {
                        (None, _) => {
                            f.bad_length.get_or_insert_with(|| {
                                format!("the answer's Content-Length '{v}' is not a number")
                            });
                        }
                        (Some(n), Some(m)) if m != n => {
                            f.bad_length.get_or_insert_with(|| format!(
                                "the answer has two Content-Length values, {m} and {n}: its framing is unknown"
                            ));
                        }
                        (Some(n), _) => f.length = Some(n),
                    }
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                f.coded = true;
                if let Some(last) = v.rsplit(',').map(str::trim).find(|c| !c.is_empty()) {
                    f.chunked = last.eq_ignore_ascii_case("chunked");
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in v.split(',').map(str::trim) {
                    f.close |= token.eq_ignore_ascii_case("close");
                    f.keep |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
        }
        f
    }

    /// How the body of an answer that has one ends: chunked when that is
    /// the last coding; read to the close under any other coding, whatever
    /// a Content-Length says; else by the length, or to the close.
    fn framing(&self) -> Result<Framing, String> {
        Ok(match (self.coded, self.chunked, self.length) {
            (true, true, _) => Framing::Chunked(Chunk::Size),
            (true, false, _) => Framing::Eof,
            _ if self.bad_length.is_some() => {
                return Err(self.bad_length.clone().unwrap_or_default())
            }
            (false, _, Some(n)) => Framing::Length(n),
            (false, _, None) => Framing::Eof,
        })
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

impl Body {
    /// The next piece of the body as it arrived, `None` at its end, or why
    /// it ended early.
    pub async fn next(&mut self) -> Option<Result<Bytes, String>> {
        loop {
            let conn = self.conn.as_mut()?;
            let buf = &mut conn.buf;
            let want = match &mut self.framing {
                Framing::Empty | Framing::Length(0) => return self.finish(),
                Framing::Length(n) => {
                    if !buf.is_empty() {
                        let k = (*n).min(buf.len() as u64);
                        *n -= k;
                        return Some(Ok(buf.split_to(k as usize).freeze()));
                    }
                    (*n).min(LONG_READ as u64) as usize
                }
                Framing::Eof => {
                    if !buf.is_empty() {
                        return Some(Ok(buf.split().freeze()));
                    }
                    READ_SIZE
                }
                Framing::Chunked(state) => match step(state, buf) {
                    Step::Data(b) => return Some(Ok(b)),
                    Step::Done => return self.finish(),
                    Step::Bad(msg) => {
                        self.conn = None;
                        return Some(Err(msg));
                    }
                    Step::NeedMore => match state {
                        Chunk::Data(n) => (*n).min(LONG_READ as u64) as usize,
                        _ => READ_SIZE,
                    },
                },
            };
            match conn.fill(want).await {
                Ok(0) if self.framing == Framing::Eof => {
                    self.keep_alive = false;
                    return self.finish();
                }
                Ok(0) => {
                    self.conn = None;
                    return Some(Err(
                        "the server closed the connection before the end of the body".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Some(Err(format!("reading the body: {e}")));
                }
            }
        }
    }

    /// The end of the body: the connection goes back to the pool when the
    /// server keeps it and nothing beyond the answer was sent on it.
    fn finish(&mut self) -> Option<Result<Bytes, String>> {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && conn.buf.is_empty() {
                self.pool.put_back(conn);
            }
        }
        None
    }
}

/// Decode what `buf` holds of a chunked body from `state`: the next piece
/// of data (split off the buffer), or that more bytes are needed, or the
/// body's end, or why the encoding is wrong.
fn step(state: &mut Chunk, buf: &mut BytesMut) -> Step {
    loop {
        match *state {
            Chunk::Data(n) => {
                if buf.is_empty() {
                    return Step::NeedMore;
                }
                let k = n.min(buf.len() as u64);
                *state = if k == n {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(n - k)
                };
                return Step::Data(buf.split_to(k as usize).freeze());
            }
            Chunk::Size | Chunk::DataEnd | Chunk::Trailers => {
                let Some(nl) = memchr::memchr(b'\n', buf) else {
                    if buf.len() > MAX_HEAD {
                        return Step::Bad("a chunk-size line longer than 64 KiB".into());
                    }
                    return Step::NeedMore;
                };
                let line = buf.split_to(nl + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match *state {
                    Chunk::DataEnd if line.is_empty() => *state = Chunk::Size,
                    Chunk::DataEnd => {
                        return Step::Bad("a chunk's data is longer than its size".into())
                    }
                    Chunk::Trailers if line.is_empty() => return Step::Done,
                    Chunk::Trailers => {}
                    _ => {
                        let digits = line
                            .split(|b| *b == b';')
                            .next()
                            .unwrap_or_default()
                            .trim_ascii();
                        let size = std::str::from_utf8(digits)
                            .ok()
                            .filter(|d| !d.is_empty() && d.len() <= 15)
                            .and_then(|d| u64::from_str_radix(d, 16).ok());
                        *state = match size {
                            Some(0) => Chunk::Trailers,
                            Some(n) => Chunk::Data(n),
                            None => {
                                return Step::Bad(format!(
                                    "a chunk size that is not hexadecimal: '{}'",
                                    String::from_utf8_lossy(line)
                                ))
                            }
                        };
                    }
                }
            }
        }
    }
}

/// Whether a send failed because the connection was closed under it (EOF
/// or a reset) rather than for anything the server answered (for reqwest's
/// errors, whose chain holds hyper's and the socket's).
pub fn closed_before_answer(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if is_closed(io) {
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

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;

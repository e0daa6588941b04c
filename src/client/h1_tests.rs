//! Tests of the HTTP/1.1 client: the chunked decoder against bodies cut at
//! every kind of boundary, and whole exchanges with a scripted server on a
//! loopback socket (keep-alive, framing, 1xx, HEAD, closes and cuts).

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// `body` in chunked encoding, with chunk sizes from `rng`, some chunk
/// extensions, upper- and lower-case hex and a trailer now and then.
fn chunked(body: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.usize(1..=rest.len().min(300));
        let size = if rng.bool() {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        out.extend_from_slice(size.as_bytes());
        if rng.u8(..) < 20 {
            out.extend_from_slice(b";ext=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if rng.u8(..) < 40 {
        out.extend_from_slice(b"x-trailer: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Feed `wire` to the decoder in pieces cut at random: the data it gives
/// back, and whether it saw the end.
fn decode(wire: &[u8], rng: &mut fastrand::Rng) -> Result<(Vec<u8>, bool), String> {
    let mut state = Chunk::Size;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match step(&mut state, &mut buf) {
            Step::Data(b) => out.extend_from_slice(&b),
            Step::Done => return Ok((out, buf.is_empty() && at == wire.len())),
            Step::Bad(m) => return Err(m),
            Step::NeedMore if at == wire.len() => return Ok((out, false)),
            Step::NeedMore => {
                let n = rng.usize(1..=(wire.len() - at).min(64));
                buf.extend_from_slice(&wire[at..at + n]);
                at += n;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode_whatever_the_reads_cut() {
    let mut rng = fastrand::Rng::with_seed(7);
    for case in 0..2000 {
        let len = rng.usize(0..2000);
        let body: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let wire = chunked(&body, &mut rng);
        let (got, done) = decode(&wire, &mut rng).unwrap();
        assert!(done, "case {case}: the end was seen");
        assert_eq!(got, body, "case {case}");
    }
}

#[test]
fn bad_chunked_encodings_are_errors_and_a_short_one_is_unfinished() {
    let mut rng = fastrand::Rng::with_seed(1);
    for wire in [
        &b"zz\r\nabc\r\n0\r\n\r\n"[..],
        b"3\r\nabcd\r\n0\r\n\r\n",
        b"\r\n",
    ] {
        assert!(
            decode(wire, &mut rng).is_err(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let (got, done) = decode(b"5\r\nabc", &mut rng).unwrap();
    assert_eq!((got.as_slice(), done), (&b"abc"[..], false));
}

/// What the scripted server does with a request.
enum Answer {
    /// Send these bytes and wait for the next request.
    Send(&'static [u8]),
    /// Send these bytes and close the connection.
    SendAndClose(&'static [u8]),
    /// Send these bytes and wait.
    Owned(Vec<u8>),
    /// Close the connection without a word.
    Close,
}

use Answer::*;

/// A server on a loopback port answering each request with the next of
/// `answers`, counting the connections it accepted.
async fn serve(answers: Vec<Answer>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // One request: a head (these carry no body).
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.clear();
                    let next = answers.lock().unwrap().next();
                    let (bytes, close) = match &next {
                        Some(Send(b)) => (*b, false),
                        Some(SendAndClose(b)) => (*b, true),
                        Some(Owned(b)) => (b.as_slice(), false),
                        Some(Close) | None => return,
                    };
                    // In small pieces, as a streaming server sends.
                    for piece in bytes.chunks(7) {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

async fn body_of(sent: &mut Sent) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(b) = sent.body.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

fn pool(port: u16) -> Arc<Pool> {
    Arc::new(Pool::new("127.0.0.1", port, 8, Duration::from_secs(2)))
}

#[tokio::test]
async fn kept_alive_answers_of_every_framing_share_one_connection() {
    let sse = b"data: {\"a\":1}\n\ndata: [DONE]\n\n";
    let mut chunked_answer =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    chunked_answer.extend(chunked(sse, &mut fastrand::Rng::with_seed(3)));
    let (port, accepted) = serve(vec![
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-queue-time: 12\r\n\r\nhello"),
        Owned(chunked_answer),
        Send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
    ])
    .await;
    let pool = pool(port);
    let mut a = pool.send(GET, false).await.unwrap();
    assert_eq!(a.head.status, 200);
    assert_eq!(a.head.header("X-Queue-Time"), Some("12"));
    assert_eq!(body_of(&mut a).await.unwrap(), b"hello");
    let mut b = pool.send(GET, false).await.unwrap();
    assert_eq!(body_of(&mut b).await.unwrap(), sse);
    let mut c = pool.send(GET, false).await.unwrap();
    assert_eq!(c.head.status, 204, "past the 100 Continue");
    assert_eq!(body_of(&mut c).await.unwrap(), b"");
    let mut d = pool.send(GET, false).await.unwrap();
    assert_eq!(body_of(&mut d).await.unwrap(), b"");
    assert!(!(a.reconnect || b.reconnect || c.reconnect || d.reconnect));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_to_the_close_and_an_announced_close_are_not_kept() {
    let (port, accepted) = serve(vec![Send(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
    )])
    .await;
    let pool = pool(port);
    let mut a = pool.send(GET, false).await.unwrap();
    assert!(!a.head.keep_alive);
    assert_eq!(body_of(&mut a).await.unwrap(), b"ok");
    assert!(pool.pop().is_none(), "an announced close is not kept");
    drop(accepted);

    // No length, no chunks: the body ends where the server closes.
    let (port, _) = serve(vec![SendAndClose(b"HTTP/1.0 200 OK\r\n\r\nall of it")]).await;
    let pool = super::tests::pool(port);
    let mut a = pool.send(GET, false).await.unwrap();
    assert_eq!(body_of(&mut a).await.unwrap(), b"all of it");
    assert!(pool.pop().is_none());
}

#[tokio::test]
async fn an_answer_to_head_has_no_body_whatever_its_length_says() {
    let (port, _) = serve(vec![
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"),
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx"),
    ])
    .await;
    let pool = pool(port);
    let mut a = pool.send(b"HEAD / HTTP/1.1\r\n\r\n", true).await.unwrap();
    assert_eq!(body_of(&mut a).await.unwrap(), b"");
    let mut b = pool.send(GET, false).await.unwrap();
    assert_eq!(
        body_of(&mut b).await.unwrap(),
        b"x",
        "the connection is in step"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_closed_under_the_request_is_a_reconnect() {
    // The first connection answers once, then closes without answering the
    // second request: that one goes out again on a new connection.
    let ok = || Send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (port, accepted) = serve(vec![ok(), Close, ok()]).await;
    let pool = pool(port);
    let mut a = pool.send(GET, false).await.unwrap();
    body_of(&mut a).await.unwrap();
    let mut b = pool.send(GET, false).await.unwrap();
    assert!(b.reconnect);
    assert_eq!(body_of(&mut b).await.unwrap(), b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // A fresh connection closed without an answer is an error.
    let (port, _) = serve(vec![Close]).await;
    let err = super::tests::pool(port)
        .send(GET, false)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_garbage_is_not_http() {
    let (port, _) = serve(vec![SendAndClose(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
    )])
    .await;
    let mut a = pool(port).send(GET, false).await.unwrap();
    let err = body_of(&mut a).await.unwrap_err();
    assert!(err.contains("before the end of the body"), "{err}");

    let (port, _) = serve(vec![Send(b"SSH-2.0-OpenSSH\r\n\r\n")]).await;
    let err = pool(port).send(GET, false).await.err().unwrap();
    assert!(err.to_string().contains("not HTTP/1.1"), "{err}");
}

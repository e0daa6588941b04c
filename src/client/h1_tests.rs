//! Tests of the HTTP/1.1 client: the chunked decoder against bodies cut at
//! every kind of boundary, and whole exchanges with a scripted server on a
//! loopback socket (keep-alive, framing, 1xx, HEAD, closes and cuts), RFC
//! 9112's framing rules, random heads read beside hyper's client, and
//! Happy Eyeballs past a black-holed address.

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
    /// Send these bytes and close.
    OwnedAndClose(Vec<u8>),
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
                        Some(OwnedAndClose(b)) => (b.as_slice(), true),
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
    let mut a = pool.send(GET, false, true).await.unwrap();
    assert_eq!(a.head.status, 200);
    assert_eq!(a.head.header("X-Queue-Time"), Some("12"));
    assert_eq!(body_of(&mut a).await.unwrap(), b"hello");
    let mut b = pool.send(GET, false, true).await.unwrap();
    assert_eq!(body_of(&mut b).await.unwrap(), sse);
    let mut c = pool.send(GET, false, true).await.unwrap();
    assert_eq!(c.head.status, 204, "past the 100 Continue");
    assert_eq!(body_of(&mut c).await.unwrap(), b"");
    let mut d = pool.send(GET, false, true).await.unwrap();
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
    let mut a = pool.send(GET, false, true).await.unwrap();
    assert!(!a.head.keep_alive);
    assert_eq!(body_of(&mut a).await.unwrap(), b"ok");
    assert!(pool.pop().is_none(), "an announced close is not kept");
    drop(accepted);

    // No length, no chunks: the body ends where the server closes.
    let (port, _) = serve(vec![SendAndClose(b"HTTP/1.0 200 OK\r\n\r\nall of it")]).await;
    let pool = super::tests::pool(port);
    let mut a = pool.send(GET, false, true).await.unwrap();
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
    let mut a = pool
        .send(b"HEAD / HTTP/1.1\r\n\r\n", true, true)
        .await
        .unwrap();
    assert_eq!(body_of(&mut a).await.unwrap(), b"");
    let mut b = pool.send(GET, false, true).await.unwrap();
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
    let mut a = pool.send(GET, false, true).await.unwrap();
    body_of(&mut a).await.unwrap();
    let mut b = pool.send(GET, false, true).await.unwrap();
    assert!(b.reconnect);
    assert_eq!(body_of(&mut b).await.unwrap(), b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // A fresh connection closed without an answer is an error.
    let (port, _) = serve(vec![Close]).await;
    let err = super::tests::pool(port)
        .send(GET, false, true)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test]
async fn a_post_written_on_a_connection_that_then_closes_is_lost_not_sent_again() {
    // The server reads the second request and closes without a word: a
    // POST may have started work there, so it is not sent again.
    let ok = || Send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let (port, accepted) = serve(vec![ok(), Close, ok()]).await;
    let pool = pool(port);
    const POST: &[u8] = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n";
    let mut a = pool.send(POST, false, false).await.unwrap();
    body_of(&mut a).await.unwrap();
    // Idle for longer than a server that closes after its answers takes.
    tokio::time::sleep(super::AFTER_ANSWER + Duration::from_millis(50)).await;
    let err = pool.send(POST, false, false).await.err().unwrap();
    let SendError::Lost(msg) = &err else {
        panic!("not Lost: {err}")
    };
    assert!(
        msg.contains(
            "a kept-alive connection closed after the whole request (47 bytes) was written"
        ) && msg.contains("not sent again"),
        "{msg}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no second connection");

    // On a new connection too: how far it got, and not sent again.
    let (port, accepted) = serve(vec![Close]).await;
    let err = super::tests::pool(port)
        .send(POST, false, false)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, SendError::Lost(m) if m.contains("a new connection closed after the whole request")),
        "{err}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_dns_failure() {
    let p = Arc::new(Pool::new(
        "periscope-test.invalid",
        80,
        1,
        Duration::from_secs(5),
    ));
    let err = p.send(GET, false, true).await.err().unwrap();
    assert!(
        matches!(&err, SendError::Dns(host, _) if host == "periscope-test.invalid:80"),
        "{err}"
    );
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_garbage_is_not_http() {
    let (port, _) = serve(vec![SendAndClose(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
    )])
    .await;
    let mut a = pool(port).send(GET, false, true).await.unwrap();
    let err = body_of(&mut a).await.unwrap_err();
    assert!(err.contains("before the end of the body"), "{err}");

    let (port, _) = serve(vec![Send(b"SSH-2.0-OpenSSH\r\n\r\n")]).await;
    let err = pool(port).send(GET, false, true).await.err().unwrap();
    assert!(err.to_string().contains("not HTTP/1.1"), "{err}");
}

#[tokio::test]
async fn conflicting_lengths_are_refused_and_a_repeated_one_is_one_length() {
    let (port, _) = serve(vec![Send(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 30\r\n\r\nabc",
    )])
    .await;
    let err = pool(port).send(GET, false, true).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("two Content-Length values, 3 and 30"),
        "{err}"
    );

    let (port, accepted) = serve(vec![
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc"),
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nde"),
    ])
    .await;
    let p = pool(port);
    for want in [&b"abc"[..], b"de"] {
        let mut a = p.send(GET, false, true).await.unwrap();
        assert_eq!(body_of(&mut a).await.unwrap(), want);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "kept alive");

    let (port, _) = serve(vec![Send(
        b"HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc",
    )])
    .await;
    let err = pool(port).send(GET, false, true).await.err().unwrap();
    assert!(err.to_string().contains("is not a number"), "{err}");
}

#[tokio::test]
async fn a_coding_overrides_the_length_and_the_connection_is_not_reused() {
    // The last coding is not chunked: the body runs to the close, whatever
    // the length says (RFC 9112, 6.3).
    let (port, accepted) = serve(vec![
        SendAndClose(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 2\r\n\r\nabcdef"),
        // Chunked beside a length: chunked wins, and the connection is
        // closed after it (a second answer might be smuggled in it).
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"),
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz"),
        // Codings over two fields: the last one counts.
        Send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ])
    .await;
    let p = pool(port);
    let mut a = p.send(GET, false, true).await.unwrap();
    assert_eq!(body_of(&mut a).await.unwrap(), b"abcdef");
    let mut b = p.send(GET, false, true).await.unwrap();
    assert_eq!(body_of(&mut b).await.unwrap(), b"xyz");
    let mut c = p.send(GET, false, true).await.unwrap();
    assert_eq!(body_of(&mut c).await.unwrap(), b"z");
    let mut d = p.send(GET, false, true).await.unwrap();
    assert_eq!(body_of(&mut d).await.unwrap(), b"ok");
    // One connection for the first, one for the second (closed after it),
    // one shared by the last two.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unasked_switch_of_protocols_and_too_many_fields_are_errors_of_their_own() {
    let (port, accepted) = serve(vec![
        Send(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"),
        Send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    ])
    .await;
    let p = pool(port);
    let err = p.send(GET, false, true).await.err().unwrap();
    assert!(
        err.to_string().contains("switched protocols (101)"),
        "{err}"
    );
    // The connection that switched is not used again.
    let mut a = p.send(GET, false, true).await.unwrap();
    assert_eq!(body_of(&mut a).await.unwrap(), b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..101 {
        head.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
    }
    head.extend_from_slice(b"content-length: 0\r\n\r\n");
    let (port, _) = serve(vec![Owned(head)]).await;
    let err = pool(port).send(GET, false, true).await.err().unwrap();
    assert!(
        err.to_string().contains("more than 100 header fields"),
        "{err}"
    );
}

#[tokio::test]
async fn a_black_holed_address_costs_a_quarter_second_not_the_connect_timeout() {
    // A listener that never accepts, its one-place queue filled: the
    // kernel drops further SYNs, as a black-holed route would.
    let hole = tokio::net::TcpSocket::new_v4().unwrap();
    hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hole = hole.listen(0).unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let mut filling = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(hole_addr),
        )
        .await
        {
            filling.push(s);
        }
    }
    let still = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(hole_addr),
    )
    .await;
    assert!(still.is_err(), "the hole answers: {still:?}");

    let (port, _) = serve(vec![Send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")]).await;
    let good = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let t0 = std::time::Instant::now();
    let io = super::super::dial::happy_eyeballs(vec![hole_addr, good])
        .await
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(io.peer_addr().unwrap(), good);
    assert!(
        took >= super::super::dial::ATTEMPT_DELAY && took < Duration::from_secs(1),
        "{took:?}"
    );
    drop(io);
    // None answers: the last error, within the caller's timeout.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = super::super::dial::happy_eyeballs(vec![refused])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    drop(hole);
}

/// A random answer head and body: Content-Length fields (none, one, two
/// alike or not, a list), Transfer-Encoding fields (none, chunked, another
/// coding, both), and a body of the length or not.
fn random_answer(rng: &mut fastrand::Rng) -> Vec<u8> {
    let body: Vec<u8> = (0..rng.usize(0..40))
        .map(|_| rng.alphanumeric() as u8)
        .collect();
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    let len = |rng: &mut fastrand::Rng| match rng.u8(0..4) {
        0 => body.len() + 3,
        1 => body.len().saturating_sub(2),
        _ => body.len(),
    };
    match rng.u8(0..5) {
        0 => {}
        1 => head.extend_from_slice(format!("content-length: {}\r\n", len(rng)).as_bytes()),
        2 => {
            let (a, b) = (len(rng), len(rng));
            head.extend_from_slice(
                format!("content-length: {a}\r\ncontent-length: {b}\r\n").as_bytes(),
            );
        }
        3 => {
            let (a, b) = (len(rng), len(rng));
            head.extend_from_slice(format!("content-length: {a}, {b}\r\n").as_bytes());
        }
        _ => head.extend_from_slice(b"content-length: 1x\r\n"),
    }
    let coding = rng.u8(0..4);
    match coding {
        0 => {}
        1 => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        2 => head.extend_from_slice(b"transfer-encoding: gzip\r\n"),
        _ => head.extend_from_slice(b"transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    if coding == 1 || coding == 3 {
        head.extend_from_slice(&chunked(&body, rng));
    } else {
        head.extend_from_slice(&body);
    }
    head
}

/// hyper's HTTP/1.1 client's reading of `answer`: the body, or an error.
async fn hyper_reads(port: u16) -> Result<Vec<u8>, String> {
    use http_body_util::BodyExt;
    let io = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Empty<Bytes>>(
            hyper_util::rt::TokioIo::new(io),
        )
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", "x")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().to_vec())
}

/// Framing conflicts and heads with a byte gone wrong, read by this client
/// and by hyper's: the same body, or both an error.
#[tokio::test]
async fn framing_of_random_heads_agrees_with_hypers_client() {
    let mut rng = fastrand::Rng::with_seed(9112);
    for case in 0..600 {
        let mut answer = random_answer(&mut rng);
        // Every other case, one byte of the head made something else.
        let head_len = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(0)
            + 4;
        if case % 2 == 1 {
            let at = rng.usize(..head_len);
            answer[at] = *rng.choice(b"\0 :\n\r\t\x7f\xff/1aZ;,".iter()).unwrap();
        }
        let (ours_port, _) = serve(vec![OwnedAndClose(answer.clone())]).await;
        let ours = match pool(ours_port).send(GET, false, true).await {
            Ok(mut sent) => body_of(&mut sent).await,
            Err(e) => Err(e.to_string()),
        };
        let (theirs_port, _) = serve(vec![OwnedAndClose(answer.clone())]).await;
        let theirs = hyper_reads(theirs_port).await;
        let shown = String::from_utf8_lossy(&answer);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "case {case}: {shown}"),
            (Err(_), Err(_)) => {}
            _ => panic!("case {case}: ours {ours:?}, hyper's {theirs:?}: {shown}"),
        }
    }
}

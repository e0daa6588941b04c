//! The dashboard's HTTP side: the page, its event stream, the HTML report
//! at the end; the token check; a page that falls behind dropped.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::broadcast::error::RecvError;

use super::Board;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The page: markup, style and script in one file, no other request.
const PAGE: &str = include_str!("page.html");

pub(super) async fn accept_loop(listener: tokio::net::TcpListener, board: Board) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let stop = board.hub.stop.clone();
    loop {
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let (board, builder, stop) = (board.clone(), builder.clone(), stop.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let board = board.clone();
                async move { Ok::<_, Infallible>(route(&board, &req)) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn route<B>(board: &Board, req: &Request<B>) -> Response<Body> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the dashboard only reads: GET",
        );
    }
    if let Some(token) = &board.hub.token {
        if !authorized(req, token) {
            return text(
                StatusCode::UNAUTHORIZED,
                "this dashboard asks for its token: open /?token=TOKEN (or send Authorization: Bearer TOKEN)",
            );
        }
    }
    match req.uri().path() {
        "/" | "/index.html" => respond(
            "text/html; charset=utf-8",
            Full::new(Bytes::from_static(PAGE.as_bytes())).boxed_unsync(),
        ),
        "/events" => respond("text/event-stream", events(board)),
        "/report" => match board.state().report.clone() {
            Some(html) => respond(
                "text/html; charset=utf-8",
                Full::new(html).boxed_unsync(),
            ),
            None => text(
                StatusCode::NOT_FOUND,
                "the HTML report is here once the run has ended, while the page lingers (--dashboard-linger)",
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: the dashboard is at /"),
    }
}

/// The token from `?token=` or `Authorization: Bearer`, compared in time
/// that does not depend on where they differ.
fn authorized<B>(req: &Request<B>, token: &str) -> bool {
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    });
    let from_header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    [from_query, from_header]
        .into_iter()
        .flatten()
        .any(|given| same(given.as_bytes(), token.as_bytes()))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `hello`, the history, then every event as it comes; ends when the
/// board stops, or when this page fell a ring behind (dropped, counted).
fn events(board: &Board) -> Body {
    let (history, rx) = board.subscribe();
    let hello = format!(
        "retry: 2000\nevent: hello\ndata: {}\n\n",
        serde_json::json!({"at": board.at(), "events": history.len()})
    );
    let head = futures_util::stream::iter(std::iter::once(Bytes::from(hello)).chain(history));
    let stop = board.hub.stop.clone();
    let b = board.clone();
    let live = futures_util::stream::unfold((rx, stop, b), |(mut rx, stop, b)| async move {
        let next = tokio::select! {
            r = rx.recv() => r,
            _ = stop.cancelled() => return None,
        };
        match next {
            Ok(ev) => Some((ev, (rx, stop, b))),
            Err(RecvError::Lagged(_)) => {
                b.hub.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(RecvError::Closed) => None,
        }
    });
    let frames = head
        .chain(live)
        .map(|ev| Ok::<_, Infallible>(Frame::data(ev)));
    StreamBody::new(frames).boxed_unsync()
}

fn respond(content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_str(content_type).expect("a valid content type"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "content-security-policy",
        hyper::header::HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:",
        ),
    );
    r
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = respond(
        "text/plain; charset=utf-8",
        Full::new(Bytes::from(format!("{msg}\n"))).boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap()
    }

    #[tokio::test]
    async fn a_page_that_falls_a_ring_behind_is_dropped_and_the_board_goes_on() {
        let cfg = super::super::Config::parse("127.0.0.1:0", None, Default::default()).unwrap();
        let board = Board::bind_ring(&cfg, 4).unwrap();
        board.push("window", &serde_json::json!({"t": 0}));
        let slow = events(&board);
        for t in 1..=10 {
            board.push("window", &serde_json::json!({ "t": t }));
        }
        let got = slow.collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&got);
        // The hello and the history it was given, then nothing: dropped.
        assert!(text.starts_with("retry: 2000\nevent: hello\n"), "{text}");
        assert!(
            text.ends_with("event: window\ndata: {\"t\":0}\n\n"),
            "{text}"
        );
        assert_eq!(board.dropped(), 1);
        // A page that keeps up gets everything after it came.
        let mut fresh = events(&board);
        board.push("window", &serde_json::json!({"t": 11}));
        let mut all = String::new();
        while !all.contains("\"t\":11") {
            let frame = fresh.frame().await.unwrap().unwrap();
            all.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap()));
        }
        assert_eq!(all.matches("event: window").count(), 12, "{all}");
    }

    #[test]
    fn the_token_is_read_from_the_query_or_a_bearer_header() {
        assert!(authorized(&req("/events?token=s%203", None), "s 3"));
        assert!(authorized(&req("/?a=1&token=abc", None), "abc"));
        assert!(authorized(&req("/", Some("Bearer abc")), "abc"));
        assert!(!authorized(&req("/?token=abd", None), "abc"));
        assert!(!authorized(&req("/?token=ab", None), "abc"));
        assert!(!authorized(&req("/", Some("Basic abc")), "abc"));
        assert!(!authorized(&req("/", None), "abc"));
    }
}

//! The mock's connections: accept (counted), serve HTTP/1.1 or HTTP/2 (h2c,
//! prior knowledge) on each, and (`--close-after-response`) close a share
//! of them after a response,
//! though every answer advertised keep-alive, as llama.cpp's server does
//! after a streamed answer. The client's next request on such a connection
//! finds it closed: a reconnect, which `GET /mock/stats` counts from this
//! side as `closed_after_response`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::{handle, MockBody, State};
use crate::tokenizer;

pub(super) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokenizer::warm_up();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of file descriptors, most likely: back off briefly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        state.stats.note_connection();
        let state = state.clone();
        let builder = builder.clone();
        let close_rate = state.config.faults.close_after_response;
        if close_rate <= 0.0 {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            continue;
        }
        tokio::spawn(async move {
            // Fired by the end of a response chosen to close its connection.
            let closing = Arc::new(Notify::new());
            let notify = closing.clone();
            let st = state.clone();
            let service = hyper::service::service_fn(move |req| {
                let (state, notify) = (st.clone(), notify.clone());
                async move {
                    let resp = handle(state.clone(), req).await?;
                    let close = state.coin(close_rate);
                    Ok::<_, std::convert::Infallible>(resp.map(|inner| Closing {
                        inner,
                        notify: close.then_some(notify),
                    }))
                }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.notified() => {
                    // The answer is whole: no more requests on this
                    // connection, and no `Connection: close` either (its head
                    // left long ago).
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                    state.stats.note_closed_after_response();
                }
            }
        });
    }
}

/// A response body that, at its end, asks for its connection to be closed.
struct Closing {
    inner: MockBody,
    notify: Option<Arc<Notify>>,
}

impl Body for Closing {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            if let Some(n) = self.notify.take() {
                n.notify_one();
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        // Reported as not ended until polled to its end, so the notice fires.
        self.notify.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! Compressed answers: an SSE stream compressed by the reference tools
//! (gzip, brotli, zstd from Debian) decodes to the mock's own bytes in both
//! HTTP engines, with the bytes on the wire and decoded both counted; a
//! cut one is an error that names its coding; and through nginx with
//! `gzip on` for `text/event-stream`, each event is decoded as it arrives,
//! so the timings still agree with the mock's stamps.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use crate::common::{chat, f, http, installed, latency, run_ok, MockProc, Nginx};

/// `body` through a compressing tool (`gzip -c`, …).
fn compress(tool: &str, body: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// A server on a free loopback port that answers every request on every
/// kept-alive connection with `body`, labelled `Content-Encoding: coding`
/// and framed by a `Content-Length` of `length`.
fn serve(coding: &'static str, body: Vec<u8>, length: usize) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request: its head, then its Content-Length body.
                    let (head_end, want) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let n = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (i + 4, n);
                        }
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + want {
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + want);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: {coding}\r\ncontent-length: {length}\r\n\r\n"
                    );
                    let sent = c
                        .write_all(head.as_bytes())
                        .and_then(|_| c.write_all(&body[..length.min(body.len())]));
                    if sent.is_err() || length > body.len() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/v1")
}

/// The mock's streamed answer to one chat request, as bytes.
async fn sse_body(mock: &MockProc) -> Vec<u8> {
    let r = http()
        .post(mock.url("/v1/chat/completions"))
        .json(&chat("hello there", true, 16))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_compressed_by_gzip_brotli_and_zstd_decodes_to_the_servers_bytes() {
    if !installed("brotli", "brotli") || !installed("zstd", "zstd") {
        return;
    }
    let mock = MockProc::start(&["--ttft", "0ms", "--itl", "0ms", "--output-tokens", "16"]);
    let plain = sse_body(&mock).await;
    for (coding, tool) in [("gzip", "gzip"), ("br", "brotli"), ("zstd", "zstd")] {
        let packed = compress(tool, &plain);
        assert!(packed.len() < plain.len(), "{tool} compresses");
        let target = serve(coding, packed.clone(), packed.len());
        for engine in ["h1", "reqwest"] {
            let (_, r) = run_ok(&[
                "run",
                "--target",
                &target,
                "--http-engine",
                engine,
                "--vus",
                "2",
                "--iterations",
                "20",
                "--no-preflight",
                "--max-tokens",
                "16",
            ])
            .await;
            let s = &r["summary"];
            let what = format!("{coding} over {engine}: {s}");
            assert_eq!(s["ok"], 20, "{what}");
            assert_eq!(s["output_tokens"], 20 * 16, "{what}");
            assert_eq!(s["received"]["compressed"], 20, "{what}");
            assert_eq!(s["received"]["bytes"], 20 * plain.len() as u64, "{what}");
            assert_eq!(
                s["received"]["wire_bytes"],
                20 * packed.len() as u64,
                "{what}"
            );
        }
        // The same body cut in half, framed as such: no [DONE] arrives, and
        // the compressed stream stops before its end.
        let cut = serve(coding, packed.clone(), packed.len() / 2);
        let (_, r) = run_ok(&[
            "run",
            "--target",
            &cut,
            "--vus",
            "1",
            "--iterations",
            "3",
            "--no-preflight",
            "--max-tokens",
            "16",
        ])
        .await;
        let errors = r["errors"].as_array().unwrap();
        assert_eq!(r["summary"]["errors"], 3, "{coding}: {errors:?}");
        assert!(
            errors.iter().all(
                |e| e["class"] == "bad_body" && e["message"].as_str().unwrap().contains(coding)
            ),
            "{coding}: {errors:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_gzipped_by_nginx_is_decoded_event_by_event_on_the_mocks_stamps() {
    let mock = MockProc::start(&["--ttft", "100ms", "--itl", "20ms", "--output-tokens", "16"]);
    let Some(nginx) = Nginx::gzip_proxy(&mock.addr) else {
        return;
    };
    // Off by default: no Accept-Encoding, so nginx sends the stream plain.
    let (_, plain) = run_ok(&[
        "run",
        "--target",
        &nginx.base(),
        "--vus",
        "4",
        "--iterations",
        "8",
        "--no-preflight",
    ])
    .await;
    assert_eq!(plain["summary"]["ok"], 8, "{}", plain["summary"]);
    assert_eq!(plain["summary"]["received"]["compressed"], 0);
    mock.reset().await;
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &nginx.base(),
        "--compression",
        "--vus",
        "4",
        "--duration",
        "3s",
        "--no-preflight",
    ])
    .await;
    let s = &r["summary"];
    let ok = s["ok"].as_u64().unwrap();
    assert!(ok >= 16 && s["errors"] == 0, "{s}");
    assert_eq!(
        s["received"]["compressed"], ok,
        "nginx gzipped every answer: {s}"
    );
    let (bytes, wire) = (f(&s["received"]["bytes"]), f(&s["received"]["wire_bytes"]));
    assert!(
        wire < bytes * 0.8,
        "gzip made the stream smaller: {wire} of {bytes}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("compressed answers asked for"),
        "the report says what was asked"
    );
    // Each event came out when its bytes came in: one gap per token after
    // the first, and ttft and itl on the mock's own stamps (nginx adds
    // well under a millisecond).
    assert_eq!(
        latency(&r, "itl")["count"].as_u64().unwrap(),
        ok * 15,
        "every event decoded on its own"
    );
    let st = mock.stats().await;
    let (ttft, mock_ttft) = (
        f(&latency(&r, "ttft")["p50"]),
        f(&st["ttft_us"]["p50"]) / 1000.0,
    );
    assert!(
        (ttft - mock_ttft).abs() <= 3.0,
        "ttft {ttft} vs the mock's {mock_ttft}"
    );
    let (itl, mock_itl) = (
        f(&latency(&r, "itl")["p50"]),
        f(&st["itl_us"]["p50"]) / 1000.0,
    );
    assert!(
        (itl - mock_itl).abs() <= 1.5,
        "itl {itl} vs the mock's {mock_itl}"
    );
}

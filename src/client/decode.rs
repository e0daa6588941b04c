//! An answer's `Content-Encoding`, decoded as its bytes arrive: gzip,
//! deflate (zlib-wrapped as RFC 9110 says, or raw as some servers send it),
//! br and zstd. Each chunk read off the connection goes in and what it
//! decodes to comes out at once, so a compressed SSE stream whose server
//! flushes after every event (nginx's `gzip on` does) gives up each event
//! when its bytes arrive, and timings stay those of the wire.

use std::io::Write;

use bytes::Bytes;
use futures_util::StreamExt;

use super::BodyStream;
use crate::record::{ErrorClass, Received};

/// What `--compression` asks for: every coding periscope decodes.
pub const ACCEPT_CODINGS: &str = "gzip, br, zstd, deflate";

/// A content coding periscope decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
    Br,
    Zstd,
}

impl Coding {
    /// The coding a `Content-Encoding` value names: None for none or
    /// `identity`; an error for a coding periscope cannot decode, or for
    /// several stacked (`gzip, br`), which no server of this field sends.
    pub fn from_header(value: &[u8]) -> Result<Option<Coding>, String> {
        let v = String::from_utf8_lossy(value);
        let v = v.trim();
        let coding = match v.to_ascii_lowercase().as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Br,
            "zstd" => Coding::Zstd,
            _ if v.contains(',') => {
                return Err(format!(
                    "the answer is compressed twice (Content-Encoding: {v}); periscope decodes one of gzip, br, zstd, deflate"
                ))
            }
            _ => {
                return Err(format!(
                    "the answer's Content-Encoding '{v}' is none periscope decodes (gzip, br, zstd, deflate)"
                ))
            }
        };
        Ok(Some(coding))
    }

    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// Decodes one answer's body, chunk by chunk.
pub struct Decoder {
    coding: Coding,
    inner: Inner,
}

enum Inner {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    /// `deflate` before its first two bytes tell zlib from raw.
    Undecided(Vec<u8>),
    Br(Box<brotli_decompressor::DecompressorWriter<Vec<u8>>>),
    Zstd {
        dec: zstd::stream::raw::Decoder<'static>,
        out: Vec<u8>,
        /// A whole frame has been decoded and nothing of a next one yet.
        at_end: bool,
    },
}

impl Decoder {
    pub fn new(coding: Coding) -> Result<Self, String> {
        let inner = match coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            Coding::Deflate => Inner::Undecided(Vec::new()),
            Coding::Br => Inner::Br(Box::new(brotli_decompressor::DecompressorWriter::new(
                Vec::new(),
                4096,
            ))),
            Coding::Zstd => Inner::Zstd {
                dec: zstd::stream::raw::Decoder::new()
                    .map_err(|e| format!("starting a zstd decoder: {e}"))?,
                out: Vec::new(),
                at_end: true,
            },
        };
        Ok(Decoder { coding, inner })
    }

    /// Decode one chunk as it came off the wire; the bytes it decoded to
    /// (none yet when it held only part of a block).
    pub fn feed(&mut self, wire: &[u8]) -> Result<Bytes, String> {
        if wire.is_empty() {
            return Ok(Bytes::new());
        }
        if let Inner::Undecided(head) = &mut self.inner {
            head.extend_from_slice(wire);
            if head.len() < 2 {
                return Ok(Bytes::new());
            }
            let head = std::mem::take(head);
            // RFC 1950: CM 8 in the low nibble and a header that is a
            // multiple of 31; anything else is a raw deflate stream.
            let zlib = head[0] & 0x0f == 8 && u16::from_be_bytes([head[0], head[1]]) % 31 == 0;
            self.inner = if zlib {
                Inner::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
            } else {
                Inner::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
            };
            return self.feed(&head);
        }
        let out = match &mut self.inner {
            Inner::Gzip(d) => write_through(d, wire, |d| d.get_mut()),
            Inner::Zlib(d) => write_through(d, wire, |d| d.get_mut()),
            Inner::RawDeflate(d) => write_through(d, wire, |d| d.get_mut()),
            Inner::Br(d) => write_through(d.as_mut(), wire, |d| d.get_mut()),
            Inner::Zstd { dec, out, at_end } => zstd_step(dec, out, at_end, wire),
            Inner::Undecided(_) => unreachable!("decided above"),
        };
        out.map(Bytes::from)
            .map_err(|e| format!("the {} body does not decode: {e}", self.coding.name()))
    }

    /// The body ended: what was still held back, or an error when the
    /// compressed stream stopped before its end.
    pub fn finish(&mut self) -> Result<Bytes, String> {
        let coding = self.coding;
        let cut = || {
            format!(
                "the {} body ended before its compressed stream did",
                coding.name()
            )
        };
        let out = match &mut self.inner {
            Inner::Gzip(d) => finish_with(d.try_finish(), d.get_mut()),
            Inner::Zlib(d) => finish_with(d.try_finish(), d.get_mut()),
            Inner::RawDeflate(d) => finish_with(d.try_finish(), d.get_mut()),
            Inner::Br(d) => finish_with(d.close(), d.get_mut()),
            Inner::Undecided(head) if head.is_empty() => Ok(Vec::new()),
            Inner::Undecided(_) => return Err(cut()),
            Inner::Zstd { at_end, .. } if !*at_end => return Err(cut()),
            Inner::Zstd { out, .. } => Ok(std::mem::take(out)),
        };
        out.map(Bytes::from).map_err(|_| cut())
    }
}

/// Write `wire` into a writing decoder, flush what it holds, and take the
/// bytes it wrote into its `Vec`.
fn write_through<W: Write>(
    d: &mut W,
    wire: &[u8],
    vec: impl Fn(&mut W) -> &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    d.write_all(wire)?;
    d.flush()?;
    Ok(std::mem::take(vec(d)))
}

fn finish_with(r: std::io::Result<()>, out: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    r.map(|()| std::mem::take(out))
}

/// Run zstd's streaming decoder over `wire`, frame after frame.
fn zstd_step(
    dec: &mut zstd::stream::raw::Decoder<'static>,
    out: &mut Vec<u8>,
    at_end: &mut bool,
    wire: &[u8],
) -> std::io::Result<Vec<u8>> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut input = InBuffer::around(wire);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(16 * 1024);
        }
        let len = out.len();
        let mut ob = OutBuffer::around_pos(out, len);
        let hint = dec.run(&mut input, &mut ob)?;
        let full = ob.pos() == ob.capacity();
        // 0: a frame just ended and is all out (a next one may follow).
        *at_end = hint == 0;
        if input.pos() == wire.len() && !full {
            return Ok(std::mem::take(out));
        }
    }
}

/// An answer's body as periscope reads it: off the wire, decoded when the
/// server compressed it, with both sizes counted.
pub struct Body {
    stream: BodyStream,
    decoder: Result<Option<Decoder>, String>,
    /// Bytes as they came and once decoded.
    pub received: Received,
    ended: bool,
}

impl Body {
    /// `content_encoding` is the answer's header value, if it had one.
    pub fn new(stream: BodyStream, content_encoding: Option<&[u8]>) -> Self {
        let decoder = match content_encoding {
            None => Ok(None),
            Some(v) => Coding::from_header(v).and_then(|c| c.map(Decoder::new).transpose()),
        };
        let compressed = matches!(decoder, Ok(Some(_))) as u64;
        Body {
            stream,
            decoder,
            received: Received {
                compressed,
                ..Received::default()
            },
            ended: false,
        }
    }

    /// The next decoded chunk (maybe empty while a compressed block is
    /// incomplete), None at the body's end. A body cut short is a
    /// `StreamCut`; one that does not decode, `BadBody`.
    pub async fn next(&mut self) -> Option<Result<Bytes, (ErrorClass, String)>> {
        if self.ended {
            return None;
        }
        let decoder = match &mut self.decoder {
            Ok(d) => d,
            Err(e) => {
                self.ended = true;
                return Some(Err((ErrorClass::BadBody, e.clone())));
            }
        };
        let decoded = match self.stream.next().await {
            Some(Ok(wire)) => {
                self.received.wire_bytes += wire.len() as u64;
                match decoder {
                    None => Ok(wire),
                    Some(d) => d.feed(&wire),
                }
            }
            Some(Err(e)) => {
                self.ended = true;
                return Some(Err((ErrorClass::StreamCut, e)));
            }
            None => {
                self.ended = true;
                match decoder {
                    None => return None,
                    Some(d) => d.finish(),
                }
            }
        };
        match decoded {
            Ok(b) => {
                self.received.bytes += b.len() as u64;
                Some(Ok(b))
            }
            Err(e) => {
                self.ended = true;
                Some(Err((ErrorClass::BadBody, e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SSE events, as a server sends them.
    fn events() -> Vec<Vec<u8>> {
        (0..40)
            .map(|i| {
                format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\" word{i}\"}}}}]}}\n\n")
                    .into_bytes()
            })
            .collect()
    }

    /// The events compressed as a server that flushes after each one
    /// sends them: the compressed piece of each, then the stream's end.
    fn flushed(coding: Coding) -> (Vec<Vec<u8>>, Vec<u8>) {
        fn pieces<W: std::io::Write>(
            mut w: W,
            take: impl Fn(&mut W) -> Vec<u8>,
            end: impl FnOnce(W) -> Vec<u8>,
        ) -> (Vec<Vec<u8>>, Vec<u8>) {
            let mut out = Vec::new();
            for e in events() {
                w.write_all(&e).unwrap();
                w.flush().unwrap();
                out.push(take(&mut w));
            }
            (out, end(w))
        }
        let take = |v: &mut Vec<u8>| std::mem::take(v);
        match coding {
            Coding::Gzip => pieces(
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
                |w| take(w.get_mut()),
                |w| w.finish().unwrap(),
            ),
            Coding::Deflate => pieces(
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast()),
                |w| take(w.get_mut()),
                |w| w.finish().unwrap(),
            ),
            Coding::Zstd => pieces(
                zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap(),
                |w| take(w.get_mut()),
                |w| w.finish().unwrap(),
            ),
            Coding::Br => {
                unreachable!("no brotli encoder here: tests/it/compression.rs uses the brotli tool")
            }
        }
    }

    #[test]
    fn each_flushed_event_decodes_when_its_bytes_arrive() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Zstd] {
            let (pieces, end) = flushed(coding);
            let mut d = Decoder::new(coding).unwrap();
            for (i, (piece, event)) in pieces.iter().zip(events()).enumerate() {
                let out = d.feed(piece).unwrap();
                assert_eq!(
                    &out[..],
                    &event[..],
                    "{}: event {i} came out whole with its own bytes",
                    coding.name()
                );
            }
            assert!(d.feed(&end).unwrap().is_empty(), "{}", coding.name());
            assert!(d.finish().unwrap().is_empty(), "{}", coding.name());
        }
    }

    #[test]
    fn a_body_fed_a_byte_at_a_time_decodes_to_the_same_bytes() {
        let plain: Vec<u8> = events().concat();
        let mut bodies = vec![
            (Coding::Gzip, {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(&plain).unwrap();
                e.finish().unwrap()
            }),
            (Coding::Deflate, {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(&plain).unwrap();
                e.finish().unwrap()
            }),
            // Two zstd frames one after the other: one stream.
            (Coding::Zstd, {
                let (a, b) = plain.split_at(plain.len() / 2);
                [
                    zstd::encode_all(a, 3).unwrap(),
                    zstd::encode_all(b, 3).unwrap(),
                ]
                .concat()
            }),
        ];
        let (pieces, end) = flushed(Coding::Deflate);
        bodies.push((Coding::Deflate, [pieces.concat(), end].concat()));
        for (coding, body) in bodies {
            let mut d = Decoder::new(coding).unwrap();
            let mut out = Vec::new();
            for b in &body {
                out.extend_from_slice(&d.feed(std::slice::from_ref(b)).unwrap());
            }
            out.extend_from_slice(&d.finish().unwrap());
            assert_eq!(out, plain, "{}", coding.name());
        }
    }

    #[test]
    fn a_cut_or_damaged_body_is_an_error_that_names_its_coding() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Zstd] {
            let (pieces, _end) = flushed(coding);
            let mut d = Decoder::new(coding).unwrap();
            for p in &pieces {
                d.feed(p).unwrap();
            }
            let e = d.finish().unwrap_err();
            assert!(
                e.contains(coding.name()) && e.contains("ended before"),
                "{e}"
            );
            let mut d = Decoder::new(coding).unwrap();
            let junk = b"this is not compressed at all, only text that a server mislabelled";
            let e = d.feed(junk).and_then(|_| d.finish()).unwrap_err();
            assert!(e.contains(coding.name()), "{e}");
        }
        let mut d = Decoder::new(Coding::Br).unwrap();
        let e = d
            .feed(b"\xff\xff\xff not brotli")
            .and_then(|_| d.finish())
            .unwrap_err();
        assert!(e.contains("br"), "{e}");
    }

    #[test]
    fn content_encoding_values_name_their_coding() {
        let c = |v: &str| Coding::from_header(v.as_bytes());
        assert_eq!(c("gzip"), Ok(Some(Coding::Gzip)));
        assert_eq!(c(" X-GZIP "), Ok(Some(Coding::Gzip)));
        assert_eq!(c("br"), Ok(Some(Coding::Br)));
        assert_eq!(c("zstd"), Ok(Some(Coding::Zstd)));
        assert_eq!(c("deflate"), Ok(Some(Coding::Deflate)));
        assert_eq!(c("identity"), Ok(None));
        assert_eq!(c(""), Ok(None));
        assert!(c("gzip, br").unwrap_err().contains("compressed twice"));
        assert!(c("compress").unwrap_err().contains("'compress'"));
    }
}

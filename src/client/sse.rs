//! The SSE framing of a response body: bytes in, each event's `data` out,
//! without an allocation per event.
//!
//! It follows the WHATWG "interpreting an event stream" rules that decide
//! an event's data — lines end at CRLF, LF or CR (a CRLF split across two
//! reads is one end), a leading byte order mark is dropped once, `:` lines
//! are comments, a field's value loses one leading space, `data` lines of
//! one event are joined with `\n`, a blank line dispatches the event if it
//! has data — and ignores the fields no metric reads (`event`, `id`,
//! `retry`). Data is handed over as bytes: the chunk reader validates what
//! it reads as text (a lossy UTF-8 reading, U+FFFD for invalid bytes, is
//! the full parser's, as the standard's decoder does). The common event,
//! one `data` line, is handed over as a slice of the read; only a line
//! split across reads or an event of several `data` lines is copied.
//! Tested against the `sse-parse` crate, a complete implementation, on the
//! same bytes cut at random places.

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental SSE framing; see the module's documentation.
#[derive(Debug)]
pub struct Framer {
    /// An incomplete line held over from the last read.
    partial: Vec<u8>,
    /// The last read ended in a CR that ended a line: a LF first in the
    /// next read belongs to it.
    held_cr: bool,
    /// The stream's first bytes are still to be checked for a BOM.
    bom_pending: bool,
    /// The open event's data so far, when some of it came from an earlier
    /// read or it has several lines (copied); `open` says it has any.
    owned: Vec<u8>,
    open: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            partial: Vec::new(),
            held_cr: false,
            bom_pending: true,
            owned: Vec::new(),
            open: false,
        }
    }
}

/// Where a `data` line's value is, if the line is one.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    if line.first() == Some(&b':') {
        return None;
    }
    let (name, value) = match memchr::memchr(b':', line) {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &line[line.len()..]),
    };
    (name == b"data").then_some(value)
}

impl Framer {
    /// Take one read of the body and hand each complete event's data to
    /// `on_data`, in order, until it returns false (then false is returned
    /// and the rest is not read).
    pub fn feed(&mut self, bytes: &[u8], mut on_data: impl FnMut(&[u8]) -> bool) -> bool {
        let mut bytes = bytes;
        if self.held_cr && !bytes.is_empty() {
            self.held_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        if self.bom_pending {
            // Only a BOM's first bytes are ever held while this is pending.
            if self.partial.is_empty() && bytes.len() >= BOM.len() {
                self.bom_pending = false;
                bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            } else {
                let mut start = std::mem::take(&mut self.partial);
                start.extend_from_slice(bytes);
                if start.len() < BOM.len() && BOM.starts_with(&start) {
                    self.partial = start;
                    return true;
                }
                self.bom_pending = false;
                let rest = start.strip_prefix(BOM).unwrap_or(&start);
                return self.feed(rest, on_data);
            }
        }
        // A line held over ends in this read (or the read is all of it).
        if !self.partial.is_empty() {
            let Some(i) = memchr::memchr2(b'\n', b'\r', bytes) else {
                self.partial.extend_from_slice(bytes);
                return true;
            };
            self.partial.extend_from_slice(&bytes[..i]);
            bytes = &bytes[self.after_line_end(bytes, i)..];
            let line = std::mem::take(&mut self.partial);
            let more = if line.is_empty() {
                self.dispatch(None, &mut on_data)
            } else {
                if let Some(v) = data_value(&line) {
                    self.keep(v);
                }
                true
            };
            self.partial = line;
            self.partial.clear();
            if !more {
                return false;
            }
        }
        // The rest, in place: an event whose single data line is in this
        // read is handed over from it.
        let mut pending: Option<&[u8]> = None;
        let mut pos = 0;
        while let Some(i) = memchr::memchr2(b'\n', b'\r', &bytes[pos..]) {
            let line = &bytes[pos..pos + i];
            pos = self.after_line_end(bytes, pos + i);
            if line.is_empty() {
                if !self.dispatch(pending.take(), &mut on_data) {
                    return false;
                }
            } else {
                if let Some(v) = data_value(line) {
                    if pending.is_none() && !self.open {
                        pending = Some(v);
                    } else {
                        // A second line, or data from an earlier read first.
                        if let Some(first) = pending.take() {
                            self.keep(first);
                        }
                        self.keep(v);
                    }
                }
                // The blank line that ends most events, without a search.
                if bytes.get(pos) == Some(&b'\n') {
                    pos += 1;
                    if !self.dispatch(pending.take(), &mut on_data) {
                        return false;
                    }
                }
            }
        }
        if let Some(v) = pending {
            self.keep(v);
        }
        self.partial.extend_from_slice(&bytes[pos..]);
        true
    }

    /// The index after the line end at `i` of `bytes` (CRLF, LF or CR; a
    /// CR last in the read may be the first half of a CRLF).
    fn after_line_end(&mut self, bytes: &[u8], i: usize) -> usize {
        if bytes[i] == b'\r' {
            match bytes.get(i + 1) {
                Some(b'\n') => return i + 2,
                Some(_) => {}
                None => self.held_cr = true,
            }
        }
        i + 1
    }

    /// One more data line of the open event, copied.
    fn keep(&mut self, value: &[u8]) {
        if self.open {
            self.owned.push(b'\n');
        }
        self.owned.extend_from_slice(value);
        self.open = true;
    }

    /// A blank line: the event's data, if it has any (`single`: its only
    /// data line, still in the read).
    fn dispatch(&mut self, single: Option<&[u8]>, on_data: &mut impl FnMut(&[u8]) -> bool) -> bool {
        let more = match single {
            Some(v) => on_data(v),
            None if self.open => on_data(&self.owned),
            None => return true,
        };
        self.owned.clear();
        self.open = false;
        more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> Vec<String> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, |d| {
                out.push(String::from_utf8_lossy(d).into_owned());
                true
            });
        }
        out
    }

    /// What the reference implementation dispatches.
    fn reference(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = sse_parse::SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c);
            while let Some(ev) = p.next_event() {
                out.push(ev.data);
            }
        }
        out
    }

    #[test]
    fn the_common_shapes() {
        let body: &[u8] =
            b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\nid: 3\ndata:two\ndata: lines\n\ndata\n\n\r\ndata: [DONE]\r\n\r\n";
        let want = ["{\"a\":1}", "two\nlines", "", "[DONE]"];
        assert_eq!(frame(&[body]), want);
        assert_eq!(reference(&[body]), want);
        // Cut everywhere, one byte at a time.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(frame(&bytes), want);
    }

    #[test]
    fn a_stop_leaves_the_rest_unread() {
        let mut f = Framer::default();
        let mut seen = 0;
        let more = f.feed(b"data: 1\n\ndata: 2\n\n", |_| {
            seen += 1;
            false
        });
        assert!(!more);
        assert_eq!(seen, 1);
    }

    /// Random streams from SSE's pieces (and arbitrary bytes), cut at
    /// random places: the same data as sse-parse, event for event.
    #[test]
    fn fuzz_against_sse_parse() {
        let pieces: &[&[u8]] = &[
            b"data: ",
            b"data:",
            b"data",
            b"event: e",
            b"id: 7",
            b"retry: 10",
            b": c",
            b":",
            b" ",
            b"{\"x\":\"y\"}",
            b"[DONE]",
            b"\n",
            b"\r",
            b"\r\n",
            b"\n\n",
            b"\xEF\xBB\xBF",
            b"\xC3\xA9",
            b"\xC3",
            b"\xFF",
            b"dat",
            b"a: z",
        ];
        let mut rng = fastrand::Rng::with_seed(0x55e);
        for case in 0..20_000 {
            let mut body = Vec::new();
            for _ in 0..rng.usize(0..24) {
                if rng.u8(..) < 20 {
                    body.push(rng.u8(..));
                } else {
                    body.extend_from_slice(pieces[rng.usize(..pieces.len())]);
                }
            }
            let mut cuts: Vec<usize> = (0..rng.usize(0..6))
                .map(|_| rng.usize(0..=body.len()))
                .collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&body[at..c]);
                at = c;
            }
            chunks.push(&body[at..]);
            assert_eq!(
                frame(&chunks),
                reference(&chunks),
                "case {case}: {:?} cut {:?}",
                String::from_utf8_lossy(&body),
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
            );
        }
    }
}

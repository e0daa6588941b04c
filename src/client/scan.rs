//! The per-chunk fast path: what a streamed chat or text completion chunk
//! carries, read in one pass over its bytes without building it.
//!
//! A chunk of a stream is mostly bookkeeping (`id`, `model`, `created`,
//! `system_fingerprint`, `logprobs`) around a few bytes of output. The
//! metrics need only: does it carry output (content, reasoning, refusal, a
//! tool call, a completion's text), which text, and is there a
//! `finish_reason`. [`chunk`] answers that while validating the JSON as
//! serde_json would; it declines (returns false) whenever the answer needs
//! the full parser: a non-null `usage`, `error` or `timings`, a value of an
//! unexpected type, a duplicate key, an escaped key, more than
//! [`MAX_CHOICES`] choices, deep nesting, JSON that is not valid, or a text
//! field that is not valid UTF-8 (skipped values' bytes are not read as
//! text: their invalid bytes would be U+FFFD to the full parser). The
//! caller then parses the chunk fully (`parse.rs`), so every answer is the
//! full parser's; the tests check that on generated and mutated chunks.

use std::borrow::Cow;

/// Choices read on the fast path; a chunk with more is parsed fully.
pub const MAX_CHOICES: usize = 2;

/// Nesting beyond this is left to the full parser (and its limit).
const MAX_DEPTH: u32 = 64;

/// The output fields of a `delta` or `message`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeltaParts<'a> {
    pub reasoning_content: Option<Cow<'a, str>>,
    pub reasoning: Option<Cow<'a, str>>,
    pub content: Option<Cow<'a, str>>,
    pub refusal: Option<Cow<'a, str>>,
    pub tool_calls: bool,
}

/// What one choice carries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ChoiceParts<'a> {
    pub delta: DeltaParts<'a>,
    pub message: DeltaParts<'a>,
    pub text: Option<Cow<'a, str>>,
    pub finished: bool,
}

/// What a chunk carries, when the fast path could tell.
#[derive(Debug, Default)]
pub struct Quick<'a> {
    pub choices: [ChoiceParts<'a>; MAX_CHOICES],
    pub n: usize,
}

/// The start of the last chunk of a stream up to its `choices` key: the
/// bookkeeping a server repeats in every chunk (`id`, `object`, `created`,
/// `model`). A chunk that starts with the same bytes is read from there,
/// its start known to be valid.
#[derive(Debug, Default)]
pub struct Prefix {
    bytes: Vec<u8>,
    /// The top-level keys seen before `choices`.
    seen: [bool; 4],
}

/// Which text field of a choice a string is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    #[default]
    Content,
    Refusal,
    Reasoning,
    ReasoningContent,
    /// A text completion's `text`.
    Text,
}

impl Field {
    /// Whether the field is output a user sees (reasoning is not).
    pub fn visible(self) -> bool {
        !matches!(self, Field::Reasoning | Field::ReasoningContent)
    }
}

/// The last chunk of a stream that carried one text field and nothing else
/// the metrics read (one choice, no finish, no tool call): its bytes before
/// and after that field's string. Servers send the same bytes around each
/// token of a stream, so a chunk that starts and ends with them, with one
/// JSON string between, is that field's text and nothing else, with no
/// need to read the rest again: the bytes around were valid, with this
/// meaning, the first time.
#[derive(Debug, Default)]
pub struct Template {
    before: Vec<u8>,
    after: Vec<u8>,
    field: Option<Field>,
}

impl Template {
    /// The field and its text when `data` (trimmed) is this template with
    /// a valid string between; None: read it otherwise.
    pub fn read<'a>(&self, data: &'a [u8]) -> Option<(Field, Cow<'a, str>)> {
        let field = self.field?;
        let (b, a) = (self.before.len(), self.after.len());
        if data.len() < b + a + 2 || !data.starts_with(&self.before) || !data.ends_with(&self.after)
        {
            return None;
        }
        let mut s = Scan::new(&data[b..data.len() - a]);
        if s.b[0] != b'"' {
            return None;
        }
        let (from, to, escaped) = s.string()?;
        if s.i != s.b.len() {
            return None;
        }
        let text = if escaped {
            serde_json::from_slice::<Cow<'a, str>>(s.b).ok()?
        } else {
            Cow::Borrowed(std::str::from_utf8(&s.b[from..to]).ok()?)
        };
        Some((field, text))
    }

    fn learn(&mut self, data: &[u8], (from, to): (usize, usize), field: Field) {
        self.before.clear();
        self.before.extend_from_slice(&data[..from]);
        self.after.clear();
        self.after.extend_from_slice(&data[to..]);
        self.field = Some(field);
    }
}

/// Read a chunk (trimmed) into `q` (fresh); false: parse it fully.
/// `prefix` and `template` are the stream's, kept from one chunk to the
/// next; a chunk read here that carries one text field and nothing else
/// becomes the template.
pub fn chunk<'a>(
    data: &'a [u8],
    q: &mut Quick<'a>,
    prefix: &mut Prefix,
    template: &mut Template,
) -> bool {
    let mut s = Scan::new(data);
    let read = top(&mut s, q, prefix).is_some() && {
        s.ws();
        s.i == s.b.len()
    };
    if read && q.n == 1 && s.texts == 1 {
        let c = &q.choices[0];
        if !(c.finished || c.delta.tool_calls || c.message.tool_calls) {
            template.learn(data, s.span, s.field);
        }
    }
    read
}

/// The chunk's object, member by member.
fn top<'a>(s: &mut Scan<'a>, q: &mut Quick<'a>, prefix: &mut Prefix) -> Option<()> {
    let p = prefix.bytes.len();
    let resumed = p > 0 && s.b.len() > p && s.b[..p] == prefix.bytes[..];
    let mut seen = [false; 4];
    if resumed {
        (s.i, s.depth, seen) = (p, 1, prefix.seen);
    } else {
        s.eat(b'{')?;
        s.enter()?;
        if s.peek()? == b'}' {
            s.i += 1;
            return Some(());
        }
    }
    loop {
        if s.peek()? != b'"' {
            return None;
        }
        let member = s.i;
        let (from, to, escaped) = s.string()?;
        if escaped {
            return None;
        }
        let k = match &s.b[from..to] {
            b"choices" => Some(0),
            b"usage" => Some(1),
            b"error" => Some(2),
            b"timings" => Some(3),
            _ => None,
        };
        s.eat(b':')?;
        match k {
            None => s.value()?,
            Some(k) => {
                if k == 0 && !resumed {
                    prefix.bytes.clear();
                    prefix.bytes.extend_from_slice(&s.b[..member]);
                    prefix.seen = seen;
                }
                if std::mem::replace(&mut seen[k], true) {
                    return None;
                }
                if !s.null() {
                    if k != 0 {
                        return None;
                    }
                    s.array(|s| {
                        if q.n == MAX_CHOICES {
                            return None;
                        }
                        s.choice(&mut q.choices[q.n])?;
                        q.n += 1;
                        Some(())
                    })?;
                }
            }
        }
        match s.peek()? {
            b',' => s.i += 1,
            b'}' => {
                s.i += 1;
                return Some(());
            }
            _ => return None,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` that are zero, as their high bits (exact up to the
/// first such byte, from the least significant one).
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(ONES) & !w & HIGHS
}

/// Where the first byte of `b` that ends a string's plain run is: a quote,
/// a backslash or a control character. Eight bytes at a time.
fn special_at(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let hits = zero_bytes(w ^ (ONES * u64::from(b'"')))
            | zero_bytes(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
    /// Text fields read that were strings (not null), and the last one's
    /// span (its quotes included) and field.
    texts: u32,
    span: (usize, usize),
    field: Field,
}

impl<'a> Scan<'a> {
    fn new(b: &'a [u8]) -> Self {
        Scan {
            b,
            i: 0,
            depth: 0,
            texts: 0,
            span: (0, 0),
            field: Field::Content,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A `null` (consumed) or not (nothing consumed).
    fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// `{ "key": value, … }`, each value read by `f` (which must consume it).
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.enter()?;
        if self.peek()? == b'}' {
            self.i += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (from, to, escaped) = self.string()?;
            if escaped {
                return None;
            }
            let key = &self.b[from..to];
            self.eat(b':')?;
            f(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[ value, … ]`, each value read by `f`.
    fn array(&mut self, mut f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        self.enter()?;
        if self.peek()? == b']' {
            self.i += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            f(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn choice(&mut self, c: &mut ChoiceParts<'a>) -> Option<()> {
        let mut seen = [false; 4];
        self.object(|s, key| {
            let k = match key {
                b"delta" => 0,
                b"message" => 1,
                b"text" => 2,
                b"finish_reason" => 3,
                _ => return s.value(),
            };
            if std::mem::replace(&mut seen[k], true) {
                return None;
            }
            match k {
                0 => s.delta(&mut c.delta)?,
                1 => s.delta(&mut c.message)?,
                2 => c.text = s.text(Some(Field::Text))?,
                _ => c.finished = s.text(None)?.is_some(),
            }
            Some(())
        })
    }

    /// A `delta` or `message`: null or an object.
    fn delta(&mut self, d: &mut DeltaParts<'a>) -> Option<()> {
        if self.null() {
            return Some(());
        }
        let mut seen = [false; 5];
        self.object(|s, key| {
            let k = match key {
                b"reasoning_content" => 0,
                b"reasoning" => 1,
                b"content" => 2,
                b"refusal" => 3,
                b"tool_calls" => 4,
                _ => return s.value(),
            };
            if std::mem::replace(&mut seen[k], true) {
                return None;
            }
            match k {
                0 => d.reasoning_content = s.text(Some(Field::ReasoningContent))?,
                1 => d.reasoning = s.text(Some(Field::Reasoning))?,
                2 => d.content = s.text(Some(Field::Content))?,
                3 => d.refusal = s.text(Some(Field::Refusal))?,
                _ => {
                    d.tool_calls = !s.null();
                    if d.tool_calls {
                        s.value()?;
                    }
                }
            }
            Some(())
        })
    }

    /// A string field: null or a string (unescaped as serde_json does).
    /// `field`: the text field it is, counted for the template.
    fn text(&mut self, field: Option<Field>) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        if self.peek()? != b'"' {
            return None;
        }
        let at = self.i;
        let (from, to, escaped) = self.string()?;
        if let Some(f) = field {
            self.texts += 1;
            self.span = (at, self.i);
            self.field = f;
        }
        if !escaped {
            return std::str::from_utf8(&self.b[from..to])
                .ok()
                .map(|t| Some(Cow::Borrowed(t)));
        }
        serde_json::from_slice::<Cow<'a, str>>(&self.b[at..=to])
            .ok()
            .map(Some)
    }

    /// A string at `i` (on its quote): the range of its content and
    /// whether it has escapes. Control characters and bad escapes fail.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.i += 1;
        let from = self.i;
        let mut escaped = false;
        loop {
            self.i += special_at(&self.b[self.i..])?;
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some((from, self.i - 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
    }

    /// Any JSON value, validated and skipped.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(|s, _| s.value()),
            b'[' => self.array(|s| s.value()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(lit)
            .then(|| self.i += lit.len())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;

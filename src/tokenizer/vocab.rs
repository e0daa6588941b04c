//! The two tiktoken vocabularies periscope ships, `cl100k_base` and
//! `o200k_base`, and their loading.
//!
//! tiktoken-rs carries them as base64 text (5.3 MB of the binary) and
//! decodes that line by line at the first count (~40 ms for
//! `cl100k_base`). Here they are stored as each rank's bytes, in rank
//! order, one length byte before each, compressed with zstd (1.3 MB in
//! all); `scripts/make-vocab.py` makes them from tiktoken's files, and a
//! test checks every rank against tiktoken-rs's own. The encoder is
//! tiktoken-rs's `CoreBPE`, given the same ranks, special tokens and
//! pattern: the counts are tiktoken's.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// `cl100k_base`'s pre-tokenizer (tiktoken's `cl100k_base` pattern).
const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

static CL100K: &[u8] = include_bytes!("cl100k_base.vocab.zst");
static O200K: &[u8] = include_bytes!("o200k_base.vocab.zst");

/// `cl100k_base`, loaded at its first use.
pub fn cl100k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| {
        use tiktoken_rs::{ENDOFPROMPT, ENDOFTEXT, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX};
        load(
            CL100K,
            100_256,
            &[
                (ENDOFTEXT, 100_257),
                (FIM_PREFIX, 100_258),
                (FIM_MIDDLE, 100_259),
                (FIM_SUFFIX, 100_260),
                (ENDOFPROMPT, 100_276),
            ],
            CL100K_PATTERN,
        )
    })
}

/// `o200k_base`, loaded at its first use.
pub fn o200k() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| {
        load(
            O200K,
            199_998,
            &[
                (tiktoken_rs::ENDOFTEXT, 199_999),
                (tiktoken_rs::ENDOFPROMPT, 200_018),
            ],
            tiktoken_rs::O200K_BASE_PAT_STR,
        )
    })
}

/// A vocabulary of `ranks` tokens from its packed form. The data is the
/// binary's own, checked by the tests: a failure here is a broken build.
fn load(packed: &[u8], ranks: usize, specials: &[(&str, u32)], pattern: &str) -> CoreBPE {
    let raw = zstd::bulk::decompress(packed, packed.len() * 4).expect("the vocabulary built in");
    let mut encoder =
        std::collections::HashMap::with_capacity_and_hasher(ranks, Default::default());
    let mut at = 0;
    while at < raw.len() {
        let len = raw[at] as usize + 1;
        encoder.insert(raw[at + 1..at + 1 + len].to_vec(), encoder.len() as u32);
        at += 1 + len;
    }
    assert_eq!(encoder.len(), ranks, "the vocabulary built in");
    let specials = specials.iter().map(|(s, r)| (s.to_string(), *r)).collect();
    CoreBPE::new(encoder, specials, pattern).expect("tiktoken's own pattern")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_tiktoken(ours: &CoreBPE, theirs: &CoreBPE, ranks: u32, specials: &[u32]) {
        for rank in (0..ranks).chain(specials.iter().copied()) {
            assert_eq!(
                ours.decode_bytes(&[rank]).unwrap(),
                theirs.decode_bytes(&[rank]).unwrap(),
                "rank {rank}"
            );
        }
        assert!(ours.decode_bytes(&[ranks]).is_err() || specials.contains(&ranks));
        let text = "Hello, world! Ünïcödé 12345 tokens\n\n  don't   stop 🚀 <|endoftext|> x";
        assert_eq!(
            ours.encode_with_special_tokens(text),
            theirs.encode_with_special_tokens(text)
        );
        assert_eq!(ours.encode_ordinary(text), theirs.encode_ordinary(text));
    }

    #[test]
    fn every_rank_is_tiktokens() {
        let ours = cl100k();
        let theirs = tiktoken_rs::cl100k_base().unwrap();
        same_as_tiktoken(
            ours,
            &theirs,
            100_256,
            &[100_257, 100_258, 100_259, 100_260, 100_276],
        );
        same_as_tiktoken(
            o200k(),
            &tiktoken_rs::o200k_base().unwrap(),
            199_998,
            &[199_999, 200_018],
        );
    }
}

"""A tiktoken vocabulary (`<base64 token> <rank>` lines) as periscope ships
it: for each rank from 0, one byte (the token's length less one) and the
token's bytes; compressed with `zstd -19` by the caller:

    python3 scripts/make-vocab.py cl100k_base.tiktoken v && zstd -19 v -o src/tokenizer/cl100k_base.vocab.zst

(the .tiktoken files are tiktoken's, as tiktoken-rs ships them in its
crate's assets/). src/tokenizer/vocab.rs's test checks every rank against
tiktoken-rs's own."""
import base64, sys
src, dst = sys.argv[1], sys.argv[2]
toks = {}
for line in open(src, 'rb'):
    b64, rank = line.split()
    toks[int(rank)] = base64.b64decode(b64)
assert sorted(toks) == list(range(len(toks))), "ranks not contiguous"
out = bytearray()
for r in range(len(toks)):
    t = toks[r]
    assert 1 <= len(t) <= 256
    out.append(len(t) - 1)
    out += t
open(dst, 'wb').write(out)

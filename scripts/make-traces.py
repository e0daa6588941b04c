#!/usr/bin/env python3
"""The sample traces of datasets/traces/, made reproducibly (a fixed seed).

Mooncake's JSONL: `timestamp` (ms from the start), `input_length` and
`output_length` (tokens), `hash_ids` (the prompt's 512-token blocks: records
that share a block share that prefix), and `session_id` for a
conversation's turns. The shape is a production trace's, in small:

- arrivals: a Poisson process at a base rate, with bursts several times
  as dense every so often;
- prompts: a long-tailed (log-normal) length; most start with one of a few
  shared documents or system prompts (popular ones far more often: Zipf),
  then text of their own;
- outputs: a long-tailed length;
- sessions: some requests are turns of a conversation, each turn's prompt
  the one before it plus the answer and a new question, so its prefix is
  the last turn's.

usage: scripts/make-traces.py [OUT_DIR]   (default datasets/traces)
"""

import json
import math
import os
import random
import sys

BLOCK = 512


def lognormal(rng, median, sigma, lo, hi):
    return int(min(hi, max(lo, rng.lognormvariate(math.log(median), sigma))))


def arrivals(rng, seconds, base, burst, every, burst_s):
    """Poisson arrivals (ms) at `base`/s, `burst`/s for `burst_s` of every `every` s."""
    t = 0.0
    out = []
    while t < seconds:
        rate = burst if (t % every) < burst_s else base
        t += rng.expovariate(rate)
        if t < seconds:
            out.append(round(t * 1000.0, 3))
    return out


def make(rng, seconds, base, burst, every, burst_s, session_share):
    docs = 40  # shared prefixes: documents, system prompts
    zipf = [1.0 / (k + 1) ** 1.1 for k in range(docs)]
    next_block = 1_000_000
    records = []
    open_sessions = []
    session_seq = 0
    for ts in arrivals(rng, seconds, base, burst, every, burst_s):
        if open_sessions and rng.random() < session_share:
            # The next turn of a conversation: its prompt grows by the answer
            # and a new question, its prefix the last turn's blocks.
            s = rng.choice(open_sessions)
            grow = s["last_out"] + lognormal(rng, 120, 0.6, 10, 2000)
            length = s["length"] + grow
            blocks = list(s["blocks"])
            need = math.ceil(length / BLOCK)
            while len(blocks) < need:
                blocks.append(next_block)
                next_block += 1
            out = lognormal(rng, 180, 0.8, 4, 2048)
            records.append({
                "timestamp": ts,
                "input_length": length,
                "output_length": out,
                "hash_ids": blocks,
                "session_id": s["id"],
            })
            s.update(length=length, blocks=blocks, last_out=out)
            s["turns"] += 1
            if s["turns"] >= s["max_turns"]:
                open_sessions.remove(s)
            continue
        length = lognormal(rng, 1800, 0.9, 64, 32_000)
        blocks = []
        if rng.random() < 0.7:
            # A shared document first: up to half the prompt.
            doc = rng.choices(range(docs), weights=zipf)[0]
            doc_blocks = 1 + doc % 4
            blocks = [doc * 16 + j for j in range(min(doc_blocks, math.ceil(length / BLOCK)))]
        while len(blocks) < math.ceil(length / BLOCK):
            blocks.append(next_block)
            next_block += 1
        out = lognormal(rng, 180, 0.8, 4, 2048)
        rec = {"timestamp": ts, "input_length": length, "output_length": out, "hash_ids": blocks}
        if rng.random() < session_share:
            session_seq += 1
            sid = f"s{session_seq}"
            rec["session_id"] = sid
            open_sessions.append({
                "id": sid, "length": length, "blocks": blocks, "last_out": out,
                "turns": 1, "max_turns": rng.randint(2, 6),
            })
        records.append(rec)
    return records


def write(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "datasets/traces"
    os.makedirs(out, exist_ok=True)
    rng = random.Random(20261206)
    # Five minutes at ~2 req/s, 10 s bursts at 12 req/s every minute.
    write(os.path.join(out, "mooncake-like.jsonl"), make(rng, 300, 2.0, 12.0, 60, 10, 0.0))
    # Two minutes of chats: a third of the requests are later turns.
    write(os.path.join(out, "sessions.jsonl"), make(rng, 120, 3.0, 9.0, 40, 8, 0.35))


if __name__ == "__main__":
    main()

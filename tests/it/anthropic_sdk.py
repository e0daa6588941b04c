"""Parse the mock's Messages API answers with the official Anthropic Python client.

Usage: python anthropic_sdk.py ORIGIN API_KEY
Exits non-zero (with the reason) when any answer does not parse as the SDK expects.
"""
import sys

import anthropic

client = anthropic.Anthropic(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)

# Whole.
m = client.messages.create(
    model="m",
    max_tokens=5,
    system="Be brief.",
    messages=[{"role": "user", "content": "Hello"}],
)
assert m.type == "message" and m.role == "assistant", m
assert m.stop_reason == "max_tokens", m.stop_reason
assert m.usage.output_tokens == 5 and m.usage.input_tokens > 0, m.usage
assert len(m.content[0].text.split()) == 5, m.content

# Streamed, with the SDK's helper: text and usage intact.
with client.messages.stream(
    model="m",
    max_tokens=12,
    messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
assert len(text.split()) == 12, text
assert final.content[0].text == text, (final.content, text)
assert final.usage.output_tokens == 12, final.usage
assert final.usage.input_tokens > 0, final.usage
assert final.stop_reason == "max_tokens"

# Raw events.
events = list(
    client.messages.create(
        model="m", max_tokens=3, messages=[{"role": "user", "content": "x"}], stream=True
    )
)
kinds = [e.type for e in events]
assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
assert kinds.count("content_block_delta") == 3, kinds

# Errors surface as the SDK's typed errors.
bad = anthropic.Anthropic(base_url=sys.argv[1], api_key="wrong", max_retries=0)
try:
    bad.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    raise SystemExit("a wrong key was accepted")
except anthropic.AuthenticationError:
    pass

print("anthropic-sdk: ok")

"""The answer guard as a hospital script sees it through the official `openai` package (from PyPI).

Usage: openai_guard.py BASE_URL TOKEN
Prints one JSON object: the whole and the streamed answer's text and finish_reason. Exits non-zero on an
unexpected exception, so a broken server cannot pass silently.
"""
import json
import sys

import openai

base, token = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0, timeout=60)
messages = [{"role": "user", "content": "経過をまとめてください。"}]
out = {}

r = client.chat.completions.create(model="", messages=messages, max_tokens=64)
out["whole"] = {"text": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}

pieces, finish = [], None
for chunk in client.chat.completions.create(model="", messages=messages, max_tokens=64, stream=True):
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
out["stream"] = {"text": "".join(pieces), "finish_reason": finish}
print(json.dumps(out, ensure_ascii=False))

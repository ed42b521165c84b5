"""Drives karte-server with the official `openai` package (from PyPI), as a hospital script would.

Usage: openai_client.py BASE_URL GOOD_TOKEN REVOKED_TOKEN
Prints one JSON object with what it observed; the Rust test asserts on it. Exits non-zero on an unexpected
exception, so a broken server cannot pass silently.
"""
import json
import sys

import openai

base, good, revoked = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "/v1", api_key=good, max_retries=0, timeout=120)
out = {}

models = client.models.list()
out["models"] = [m.id for m in models.data]

messages = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Name one color."},
]

r = client.chat.completions.create(model=out["models"][0], messages=messages, max_tokens=16)
out["plain"] = {
    "content": r.choices[0].message.content,
    "finish_reason": r.choices[0].finish_reason,
    "completion_tokens": r.usage.completion_tokens,
    "prompt_tokens": r.usage.prompt_tokens,
}

pieces = []
finish = None
usage = None
stream = client.chat.completions.create(
    model=out["models"][0],
    messages=messages,
    max_tokens=16,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage.completion_tokens
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
out["stream"] = {"pieces": len(pieces), "text": "".join(pieces), "finish_reason": finish, "completion_tokens": usage}

schema = {
    "type": "object",
    "properties": {"color": {"type": "string", "maxLength": 20}, "count": {"type": "integer"}},
    "required": ["color", "count"],
    "additionalProperties": False,
}
r = client.chat.completions.create(
    model=out["models"][0],
    messages=[{"role": "user", "content": "Give a color and a count as JSON."}],
    max_tokens=64,
    response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
)
out["schema"] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}
try:
    out["schema"]["parsed"] = json.loads(r.choices[0].message.content)
except Exception as e:  # reported, asserted on by the Rust side
    out["schema"]["parse_error"] = str(e)


def status_of(token):
    c = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0, timeout=30)
    try:
        c.chat.completions.create(model=out["models"][0], messages=messages, max_tokens=4)
        return {"status": 200}
    except openai.AuthenticationError as e:
        return {"status": e.status_code, "code": e.body.get("code") if isinstance(e.body, dict) else None}


out["unknown_token"] = status_of("kt_" + "0" * 64)
out["revoked_token"] = status_of(revoked)
print(json.dumps(out, ensure_ascii=False))

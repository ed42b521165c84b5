"""Drives karte-server's /v1/audio/transcriptions with the official `openai` package, as a hospital script would.

Usage: openai_transcribe.py BASE_URL TOKEN SPEECH_WAV SILENCE_WAV
Prints one JSON object with what it observed; the Rust test asserts on it. Exits non-zero on an unexpected
exception, so a broken server cannot pass silently.
"""
import json
import sys

import openai

base, token, speech, silence = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0, timeout=600)
out = {}

with open(speech, "rb") as f:
    r = client.audio.transcriptions.create(
        model="whisper-1", file=f, language="ja", response_format="verbose_json"
    )
out["verbose"] = {
    "text": r.text,
    "language": r.language,
    "duration": r.duration,
    "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in (r.segments or [])],
    # Karte's addition, kept by the client as an extra field: the near-homophone replacements.
    "corrections": r.model_dump().get("corrections"),
}

with open(speech, "rb") as f:
    r = client.audio.transcriptions.create(model="whisper-base", file=f)
out["json"] = r.text

with open(silence, "rb") as f:
    out["silence"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")

try:
    client.audio.transcriptions.create(model="whisper-1", file=("dictation.mp3", b"ID3 not audio", "audio/mpeg"))
    out["not_audio"] = "accepted"
except openai.BadRequestError as e:
    out["not_audio"] = {"status": e.status_code, "code": e.body.get("code") if isinstance(e.body, dict) else None}

try:
    with open(speech, "rb") as f:
        openai.OpenAI(base_url=base + "/v1", api_key="kt_wrong", max_retries=0).audio.transcriptions.create(
            model="whisper-1", file=f
        )
    out["bad_token"] = "accepted"
except openai.AuthenticationError as e:
    out["bad_token"] = e.status_code

print(json.dumps(out, ensure_ascii=False))

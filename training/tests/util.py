"""Finds the real `karte` binary the tests run (built by `cargo xtask train-test` or `cargo build -p karte-cli`)."""

import os
from pathlib import Path


def karte_bin() -> str:
    if os.environ.get("KARTE_BIN"):
        return os.environ["KARTE_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/karte/target"))
    path = target / "debug" / "karte"
    if not path.exists():
        raise RuntimeError(f"karte binary not found at {path}: run `cargo build -p karte-cli` or set KARTE_BIN")
    return str(path)

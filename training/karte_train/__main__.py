"""`python -m karte_train corpus|scratch|continued ...` (run from training/, or with it on PYTHONPATH)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="karte_train")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus", help="pseudonymise (karte redact), deduplicate and split input files")
    c.add_argument("inputs", nargs="+", type=Path)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--karte", required=True, help="path to the karte binary whose guard pseudonymises")
    c.add_argument("--heldout-percent", type=int, default=10)
    c.add_argument("--canary-lines", type=Path, help="FILE.train.txt from `karte eval canary-kit`")
    c.add_argument("--jsonl-key", default="text")
    for name in ("scratch", "continued"):
        r = sub.add_parser(name)
        r.add_argument("--base", type=Path, required=True, help="the open base model's GGUF")
        r.add_argument("--corpus", type=Path, required=True)
        r.add_argument("--out", type=Path, required=True)
        r.add_argument("--scale", choices=["smoke", "full"], default="smoke")
        r.add_argument("--qtype", default="Q4_1", help="GGUF type of the matrices (the manifest's format)")
    a = p.parse_args(argv)

    if a.cmd == "corpus":
        from .corpus import CorpusError, build

        try:
            report = build(a.inputs, a.out, a.karte, a.heldout_percent, a.canary_lines, a.jsonl_key)
        except CorpusError as e:
            print(f"エラー [{e.code}] {e.message}", file=sys.stderr)
            return 2
        print(report.to_markdown())
        return 0

    from . import recipes

    recipes.default_threads()
    fn = recipes.scratch if a.cmd == "scratch" else recipes.continued
    path = fn(a.base, a.corpus, a.out, a.scale, a.qtype)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

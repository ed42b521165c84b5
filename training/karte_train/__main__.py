"""`python -m karte_train corpus|scratch|continued|feedback-store|feedback|report ...` (run from training/, or with it on PYTHONPATH)."""

from __future__ import annotations

import argparse
import json
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
    f = sub.add_parser("feedback", help="DPO on `karte feedback export` pairs, on top of a recipe's GGUF")
    f.add_argument("--base", type=Path, required=True, help="the open base's GGUF (tokenizer, licence)")
    f.add_argument("--start", type=Path, required=True, help="the GGUF of the recipe to improve")
    f.add_argument("--start-recipe", required=True, help="its name (scratch, continued), for the card")
    f.add_argument("--pairs", type=Path, required=True, help="the JSONL of `karte feedback export`")
    f.add_argument("--corpus", type=Path, required=True, help="the corpus (its held-out split is measured)")
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--scale", choices=["smoke", "full"], default="smoke")
    f.add_argument("--qtype", default="Q4_1")
    w = sub.add_parser("feedback-store", help="play a synthetic ward through the karte CLI and export its feedback")
    w.add_argument("--karte", required=True)
    w.add_argument("--cases", type=Path, default=Path(__file__).resolve().parents[1] / "data/ward/cases.json")
    w.add_argument("--out", type=Path, required=True, help="where `karte feedback export` writes the JSONL")
    w.add_argument("--model", help="draft with this GGUF (the model's drafts are the rejected side); rules otherwise")
    rp = sub.add_parser("report", help="the comparison report (Markdown + HTML with charts) of a training run")
    rp.add_argument("run_dir", type=Path, help="the output folder of `cargo xtask train`")
    rp.add_argument("--commit", default="", help="the commit the run was built from")
    cs = sub.add_parser("choose-start", help="which recipe the feedback improves: karte eval's recommendation")
    cs.add_argument("run_dir", type=Path)
    a = p.parse_args(argv)

    if a.cmd == "choose-start":
        from . import report

        name = report.choose_start(a.run_dir)
        print(name)
        return 0

    if a.cmd == "feedback-store":
        from . import feedback as fb

        try:
            if not fb.in_keyring_session():
                return fb.rerun_in_keyring_session(argv if argv is not None else sys.argv[1:])
            summary = fb.play_ward(a.karte, a.cases, a.out, a.model)
        except fb.FeedbackError as e:
            print(f"エラー [{e.code}] {e.message}", file=sys.stderr)
            return 2
        (a.out.parent / (a.out.name + ".summary.json")).write_text(json.dumps(summary, ensure_ascii=False, indent=2),
                                                                     encoding="utf-8")
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    if a.cmd == "report":
        from . import report

        print(report.write(a.run_dir, a.commit))
        return 0

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
    if a.cmd == "feedback":
        print(recipes.feedback(a.base, a.start, a.pairs, a.corpus, a.out, a.scale, a.qtype, a.start_recipe))
        return 0
    fn = recipes.scratch if a.cmd == "scratch" else recipes.continued
    path = fn(a.base, a.corpus, a.out, a.scale, a.qtype)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

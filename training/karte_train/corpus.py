"""Corpus step: hospital text/JSONL files and Karte exports → pseudonymised, deduplicated train/held-out split.

Why it is shaped like this:
- Every document goes through Karte's own guard (`karte redact`) *in memory* before anything is written, so the
  corpus on disk never holds the personal data the guard knows how to find. The placeholder → original table that
  `karte redact --map` writes lives in a private temporary directory only long enough to count what was removed;
  the report holds counts by kind, never the removed text.
- Deduplication is on a normalised form (NFKC, whitespace collapsed): copies of the same note from two exports
  would otherwise be seen twice per epoch and memorised faster.
- The held-out split is decided by a hash of the normalised text, not by position or a random draw, so a document
  stays on the same side when the corpus grows and re-running gives the same split.
- Canary lines (`karte eval canary-kit`) are inserted *after* redaction and deduplication, and only into the training
  side: they carry fake マイナンバー the guard would remove, and their repeats are the point of the kit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FEEDBACK_SCHEMA = "karte.feedback.v1"
# A line holding only this separates documents inside one .txt file.
TXT_SEPARATOR = "---"


class CorpusError(Exception):
    """A stable code and a Japanese message a user can act on (no clinical text in it)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


@dataclass
class Document:
    text: str
    source: str  # file name and position, never content


@dataclass
class Report:
    inputs: dict[str, int] = field(default_factory=dict)  # file → documents read
    removed: Counter = field(default_factory=Counter)  # personal-data kind → occurrences replaced
    documents_with_removals: int = 0
    documents_in: int = 0
    empty_dropped: int = 0
    duplicates_dropped: int = 0
    train: int = 0
    heldout: int = 0
    canary_lines: int = 0
    train_chars: int = 0
    heldout_chars: int = 0

    def to_json(self) -> dict:
        d = self.__dict__.copy()
        d["removed"] = dict(sorted(self.removed.items()))
        return d

    def to_markdown(self) -> str:
        rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(self.removed.items())) or "| (なし) | 0 |"
        files = "\n".join(f"| {k} | {v} |" for k, v in self.inputs.items())
        return (
            "# コーパス作成レポート\n\n"
            "## 入力\n\n| ファイル | 文書数 |\n|---|---|\n" + files + "\n\n"
            "## 仮名化（karte redact）で置き換えた個人情報\n\n| 種類 | 件数 |\n|---|---|\n" + rows + "\n\n"
            f"置き換えのあった文書: {self.documents_with_removals} / {self.documents_in}\n\n"
            "## 重複除去と分割\n\n"
            f"- 空の文書: {self.empty_dropped}\n- 重複として除いた文書: {self.duplicates_dropped}\n"
            f"- 学習用: {self.train} 文書（{self.train_chars} 文字）\n"
            f"- 評価用（held-out）: {self.heldout} 文書（{self.heldout_chars} 文字）\n"
            f"- 挿入したカナリア行（学習用のみ）: {self.canary_lines}\n"
        )


def read_inputs(paths: list[Path], jsonl_key: str = "text") -> tuple[list[Document], dict[str, int]]:
    """Reads .txt (documents separated by a `---` line), .jsonl (`jsonl_key`) and `karte feedback export` files."""
    docs: list[Document] = []
    counts: dict[str, int] = {}
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            before = len(docs)
            if f.suffix == ".txt":
                chunk: list[str] = []
                n = 0
                for line in f.read_text(encoding="utf-8").splitlines() + [TXT_SEPARATOR]:
                    if line.strip() == TXT_SEPARATOR:
                        docs.append(Document("\n".join(chunk), f"{f.name}#{n}"))
                        n += 1
                        chunk = []
                    else:
                        chunk.append(line)
            elif f.suffix == ".jsonl":
                for i, line in enumerate(f.read_text(encoding="utf-8").splitlines()):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        raise CorpusError(
                            "corpus.input_invalid",
                            f"{f.name} の {i + 1} 行目が JSON ではありません。1 行に 1 つの JSON オブジェクトにしてください。",
                        ) from None
                    if obj.get("schema") == FEEDBACK_SCHEMA:
                        # The signed text is what a physician accepted: the text worth learning from.
                        text = obj.get("final_text", "")
                    elif jsonl_key in obj and isinstance(obj[jsonl_key], str):
                        text = obj[jsonl_key]
                    else:
                        raise CorpusError(
                            "corpus.input_invalid",
                            f"{f.name} の {i + 1} 行目に \"{jsonl_key}\" がありません（`--jsonl-key` で項目名を指定できます）。",
                        )
                    docs.append(Document(text, f"{f.name}:{i + 1}"))
            else:
                continue  # other files in a folder (README, maps) are not corpus input
            counts[str(f)] = len(docs) - before
    return docs, counts


def redact(text: str, karte: str, tmp: Path) -> tuple[str, Counter]:
    """Runs `karte redact` on one document; returns the pseudonymised text and the counts of kinds it replaced."""
    map_path = tmp / "map.json"
    try:
        proc = subprocess.run(
            [karte, "redact", "-", "--map", str(map_path)],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            # stderr carries karte's own code and message, which never include the text.
            raise CorpusError(
                "corpus.redact_failed",
                "karte redact が失敗しました（" + proc.stderr.decode("utf-8", "replace").strip()[:300] + "）。",
            )
        kinds = Counter(e["kind"] for e in json.loads(map_path.read_text(encoding="utf-8"))["entries"])
        return proc.stdout.decode("utf-8"), kinds
    finally:
        map_path.unlink(missing_ok=True)


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def is_heldout(norm: str, heldout_percent: int) -> bool:
    return int(hashlib.sha256(norm.encode("utf-8")).hexdigest()[:8], 16) % 100 < heldout_percent


def build(
    inputs: list[Path],
    out: Path,
    karte: str,
    heldout_percent: int = 10,
    canary_lines: Path | None = None,
    jsonl_key: str = "text",
) -> Report:
    """Builds `out/train.jsonl`, `out/heldout.jsonl`, `out/report.json` and `out/report.md`."""
    docs, counts = read_inputs(inputs, jsonl_key)
    report = Report(inputs=counts, documents_in=len(docs))
    seen: set[str] = set()
    train: list[dict] = []
    heldout: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="karte-corpus-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o700)
        for doc in docs:
            if not doc.text.strip():
                report.empty_dropped += 1
                continue
            text, kinds = redact(doc.text, karte, tmp)
            report.removed.update(kinds)
            report.documents_with_removals += bool(kinds)
            norm = normalise(text)
            key = hashlib.sha256(norm.encode("utf-8")).hexdigest()
            if key in seen:
                report.duplicates_dropped += 1
                continue
            seen.add(key)
            row = {"text": text.strip(), "source": doc.source}
            (heldout if is_heldout(norm, heldout_percent) else train).append(row)
    # A tiny corpus can hash everything to one side; a held-out set of zero measures nothing.
    if not heldout and len(train) >= 2 and heldout_percent > 0:
        heldout.append(train.pop())
    if not train and len(heldout) >= 2:
        train.append(heldout.pop())
    if canary_lines is not None:
        lines = [ln for ln in canary_lines.read_text(encoding="utf-8").splitlines() if ln.strip()]
        train.extend({"text": ln, "source": f"canary:{canary_lines.name}"} for ln in lines)
        report.canary_lines = len(lines)
    report.train, report.heldout = len(train), len(heldout)
    report.train_chars = sum(len(r["text"]) for r in train)
    report.heldout_chars = sum(len(r["text"]) for r in heldout)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    return report

"""Clinicians' feedback as DPO preference pairs, and the throw-away ward that produces a real export for the smoke run.

`pairs()` turns `karte feedback export` lines (schema `karte.feedback.v1`) into trl's standard preference format
(`prompt`, `chosen`, `rejected`):

- the note: the dictation is the prompt, the physician's signed text is *chosen*, the draft the system proposed is
  *rejected* (skipped when the physician signed the draft unchanged: no preference to learn);
- the test suggestions: each one a nurse or physician rejected is a negative. Its *chosen* side is what the
  reviewer did want (the accepted suggestions of that record, or "no further test" with the reviewer's reason), so
  the model learns to propose fewer tests the ward turns down, not to stop proposing tests.

`play_ward()` builds the export the smoke run trains on through the real CLI (admin init, users with TOTP, `draft
--save`, `edit`, `sign`, `review`, `feedback export`) in a temporary data directory, because the preference data must
be what Karte itself writes, never a hand-made imitation of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path

SCHEMA = "karte.feedback.v1"
ROOT = Path(__file__).resolve().parents[2]


class FeedbackError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def note_prompt(dictation: str) -> str:
    """The frame every recipe sees a dictation in (the same for the note pair and the suggestion pair)."""
    return f"口述：{dictation.strip()}\nカルテ：\n"


def suggestion_prompt(dictation: str) -> str:
    return f"口述：{dictation.strip()}\n追加の検査提案：\n"


def _suggestion_text(s: dict) -> str:
    return f"{s['test']}（{s['reason']}）" if s.get("reason") else s["test"]


def pairs(records: list[dict]) -> list[dict]:
    """Preference pairs from feedback records; each pair says where it came from (`source`)."""
    out = []
    for r in records:
        if r.get("schema") != SCHEMA:
            raise FeedbackError("feedback.schema", f"フィードバックの形式が違います（schema: {r.get('schema')!r}、"
                                                   f"期待値: {SCHEMA}）。karte feedback export の出力を渡してください。")
        dictation = r["dictation"]
        chosen, rejected = r["final_text"].strip(), r["draft_text"].strip()
        if chosen and rejected and chosen != rejected:
            out.append({"prompt": note_prompt(dictation), "chosen": chosen, "rejected": rejected, "source": "note"})
        reviewed = [s for s in r.get("suggestions", []) if s.get("decision")]
        accepted = [s for s in reviewed if s["decision"] == "accept"]
        for s in reviewed:
            if s["decision"] != "reject":
                continue
            if accepted:
                good = "\n".join(_suggestion_text(a) for a in accepted)
            else:
                reason = (s.get("comment") or "").strip()
                good = f"追加の検査は不要（{reason}）" if reason else "追加の検査は不要"
            out.append({"prompt": suggestion_prompt(dictation), "chosen": good, "rejected": _suggestion_text(s),
                        "source": "suggestion"})
    return out


def read_export(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the throw-away ward -------------------------------------------------------------------------------------------

PASSWORD = "smoke-ward-pass-2026"


def totp(secret_b32: str, step: int) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s), what an authenticator app computes from the enrolment's secret."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8), casefold=True)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[off:off + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


class Phone:
    """One user's authenticator. The store accepts each 30-second step at most once, from the previous step to the
    next, so a user gets three codes at once and then one per step: `code()` waits when that is used up."""

    def __init__(self, secret_b32: str, margin_s: int = 5):
        self.secret = secret_b32
        self.last = 0
        self.margin = margin_s

    @staticmethod
    def from_enrolment(stdout: str) -> "Phone":
        uri = next((line for line in stdout.splitlines() if line.startswith("otpauth://totp/")), None)
        if uri is None:
            raise FeedbackError("feedback.ward", "利用者登録の出力に otpauth URI がありません。")
        secret = next(p[len("secret="):] for p in uri.replace("?", "&").split("&") if p.startswith("secret="))
        return Phone(secret)

    def code(self) -> str:
        while True:
            secs = int(time.time())
            now, into = secs // 30, secs % 30
            earliest = now - 1 if into + self.margin < 30 else now
            step = max(earliest, self.last + 1)
            if step <= now + 1:
                self.last = step
                return totp(self.secret, step)
            time.sleep(0.5)


class Ward:
    """A data directory of its own and the `karte` commands run against it (kernel keyring of this session)."""

    def __init__(self, karte: str, data_dir: Path):
        self.karte = karte
        self.dir = data_dir
        self.phones: dict[str, Phone] = {}

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("KARTE_PASSWORD", "KARTE_TOTP", "KARTE_NEW_PASSWORD")}
        env.update(KARTE_DATA_DIR=str(self.dir), KARTE_SETTINGS=str(self.dir / "settings.toml"),
                   KARTE_KEYRING="keyutils", KARTE_WORKSTATION="train-smoke-ward")
        return env

    def run(self, args: list[str], user: str | None = None, stdin: str | None = None) -> str:
        env = self._env()
        env["KARTE_NEW_PASSWORD"] = PASSWORD
        if user is not None:
            args = [*args, "--user", user]
            env.update(KARTE_PASSWORD=PASSWORD, KARTE_TOTP=self.phones[user].code())
        cmd = [self.karte, *args]
        if "--model" in args and os.environ.get("KARTE_MODEL_LOCK"):
            cmd = ["flock", os.environ["KARTE_MODEL_LOCK"], *cmd]  # one model run at a time on a shared machine
        p = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True)
        if p.returncode != 0:
            raise FeedbackError("feedback.ward", f"karte {args[0]} {args[1] if len(args) > 1 else ''} が失敗しました"
                                                 f"（終了コード {p.returncode}）: {p.stderr.strip()[-400:]}")
        return p.stdout

    def init_admin(self, name: str) -> None:
        self.phones[name] = Phone.from_enrolment(self.run(["admin", "init", "--user", name]))

    def add_user(self, by: str, name: str, role: str) -> None:
        self.phones[name] = Phone.from_enrolment(self.run(["admin", "user", "add", name, "--role", role], user=by))


def play_ward(karte: str, cases_path: Path, out: Path, model: str | None = None) -> dict:
    """Plays `cases_path` through the CLI and writes the real `karte feedback export` to `out`. Must run inside a
    kernel session keyring (`keyctl session -`), which holds the throw-away store's key. `model` drafts every
    encounter (its drafts become the rejected side); without it the rules engine does (the smoke run: a toy model
    drafting five notes would take most of its time, and every GGUF's drafting is checked on its own). Returns a
    summary."""
    cases = json.loads(cases_path.read_text(encoding="utf-8"))["cases"]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="karte-ward-") as d:
        w = Ward(karte, Path(d))
        w.init_admin("admin")
        # A user gets three codes at once and then one per 30 s: a small tree of administrators (admin adds three,
        # each of those adds more) lets every account be added without waiting for the next step.
        people = [("dr.export", "physician")]
        for i in range(len(cases)):
            people += [(f"dr{i + 1:02d}", "physician"), (f"ns{i + 1:02d}", "nurse")]
        budget = {"admin": 3}
        queue = ["admin"]
        admins: list[str] = []
        while 3 * len(admins) < len(people) + 3:
            by = next(a for a in queue if budget[a] > 0)
            name = f"adm{len(admins) + 1}"
            w.add_user(by, name, "admin")
            budget[by] -= 1
            budget[name] = 3
            queue.append(name)
            admins.append(name)
        for name, role in people:
            by = max(queue, key=lambda a: budget[a])
            w.add_user(by, name, role)
            budget[by] -= 1
        drafted_by_model = 0
        reviews = {"accept": 0, "reject": 0}
        for i, case in enumerate(cases):
            doc, nurse = f"dr{i + 1:02d}", f"ns{i + 1:02d}"
            dictation = (ROOT / case["sample"]).read_text(encoding="utf-8")
            engine = ["--model", model] if model else ["--no-llm"]
            d_out = json.loads(w.run(["draft", "-", *engine, "--format", "json", "--save", "--patient",
                                      case["patient"]], user=doc, stdin=dictation))
            enc = d_out["encounter_id"]
            drafted_by_model += d_out.get("engine", {}).get("kind") == "local"
            w.run(["edit", enc], user=doc, stdin=case["signed"])
            w.run(["sign", enc], user=doc)
            tests = [s["test"] for s in d_out.get("suggestions", [])]
            for r in case.get("reviews", []):
                if r["test"] not in tests:
                    raise FeedbackError("feedback.ward", f"{case['sample']}: 検査提案「{r['test']}」がありません"
                                                         f"（あるもの: {'、'.join(tests)}）。")
                args = ["review", enc, "--suggestion", str(tests.index(r["test"]) + 1), f"--{r['decision']}"]
                if r.get("comment"):
                    args += ["--comment", r["comment"]]
                w.run(args, user=nurse)
                reviews[r["decision"]] += 1
        out.parent.mkdir(parents=True, exist_ok=True)
        w.run(["feedback", "export", "--output", str(out)], user="dr.export")
    records = read_export(out)
    return {"cases": len(cases), "records": len(records), "drafted_by_model": drafted_by_model,
            "draft_model": Path(model).name if model else None, "reviews": reviews,
            "pairs": len(pairs(records)), "seconds": round(time.time() - started, 1)}


def in_keyring_session() -> bool:
    return os.environ.get("KARTE_TRAIN_KEYRING_SESSION") == "1"


def rerun_in_keyring_session(argv: list[str]) -> int:
    """Runs this module again under `keyctl session -`: the store's key lives in that throw-away session keyring and
    goes with it."""
    import sys

    env = dict(os.environ, KARTE_TRAIN_KEYRING_SESSION="1")
    try:
        return subprocess.run(["keyctl", "session", "-", sys.executable, "-m", "karte_train", *argv],
                              env=env).returncode
    except FileNotFoundError:
        raise FeedbackError("feedback.keyring", "keyctl がありません。keyutils をインストールしてください"
                                                "（Debian: apt install keyutils）。") from None

"""Preference pairs from `karte feedback export`, and the throw-away ward that produces such an export.

`data/ward-export.jsonl` is the unedited output of `python -m karte_train feedback-store` (rules drafts, the ward
in data/ward/cases.json) through the real CLI; `data/sample/feedback.jsonl` holds two records in the same format
written to cover an unreviewed suggestion list and an amended record.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from karte_train import feedback
from tests.util import karte_bin

HERE = Path(__file__).resolve().parent
EXPORT = HERE / "data" / "ward-export.jsonl"
SAMPLE = HERE.parent / "data" / "sample" / "feedback.jsonl"


def record(**over) -> dict:
    r = {"schema": "karte.feedback.v1", "kind": "progress-note", "dictation": "発熱と咳。", "draft": {},
         "draft_text": "S）発熱と咳。", "final_text": "S）発熱と咳嗽。", "amended": False, "engine": "local",
         "suggestions": []}
    r.update(over)
    return r


def sug(test: str, decision, comment=None, reason="理由") -> dict:
    return {"test": test, "reason": reason, "rule": "R@1", "decision": decision, "comment": comment}


class PairsTest(unittest.TestCase):
    def test_note_pair_is_signed_text_over_draft(self):
        rows = feedback.pairs(feedback.read_export(EXPORT))
        notes = [r for r in rows if r["source"] == "note"]
        records = feedback.read_export(EXPORT)
        self.assertEqual(len(notes), len(records))  # every physician changed the draft before signing
        for r, rec in zip(notes, records):
            self.assertEqual(r["chosen"], rec["final_text"].strip())
            self.assertEqual(r["rejected"], rec["draft_text"].strip())
            self.assertTrue(r["prompt"].startswith("口述：") and rec["dictation"].strip() in r["prompt"])

    def test_rejected_suggestions_are_negatives(self):
        rows = [r for r in feedback.pairs(feedback.read_export(EXPORT)) if r["source"] == "suggestion"]
        # The ward rejected five suggestions (cases.json): 頭部CT twice, 腹部超音波, 動脈血ガス分析, BUN.
        rejected = sorted(r["rejected"].split("（")[0] for r in rows)
        self.assertEqual(rejected, ["BUN", "動脈血ガス分析", "腹部超音波", "頭部CT", "頭部CT"])
        for r in rows:
            self.assertNotIn(r["rejected"], r["chosen"])

    def test_table(self):
        # (case, records, expected (source, chosen, rejected) triples)
        cases = [
            ("signed unchanged: nothing to learn",
             [record(final_text="S）発熱と咳。")], []),
            ("edited note", [record()], [("note", "S）発熱と咳嗽。", "S）発熱と咳。")]),
            ("only whitespace differs",
             [record(final_text="S）発熱と咳。\n")], []),
            ("rejected with accepted beside it",
             [record(final_text="S）発熱と咳。", suggestions=[sug("胸部X線", "accept"),
                                                          sug("血液培養", "reject", "外来で軽症")])],
             [("suggestion", "胸部X線（理由）", "血液培養（理由）")]),
            ("rejected alone: the reviewer's reason is the chosen side",
             [record(final_text="S）発熱と咳。", suggestions=[sug("頭部CT", "reject", "MRIで代える")])],
             [("suggestion", "追加の検査は不要（MRIで代える）", "頭部CT（理由）")]),
            ("unreviewed suggestions are no evidence",
             [record(final_text="S）発熱と咳。", suggestions=[sug("尿定性", None), sug("血算", None)])], []),
            ("accepted only: no negative",
             [record(final_text="S）発熱と咳。", suggestions=[sug("血算", "accept")])], []),
        ]
        for name, records, want in cases:
            with self.subTest(name):
                got = [(p["source"], p["chosen"], p["rejected"]) for p in feedback.pairs(records)]
                self.assertEqual(got, want)

    def test_sample_records(self):
        rows = feedback.pairs(feedback.read_export(SAMPLE))
        self.assertEqual([r["source"] for r in rows], ["note", "suggestion", "note"])
        self.assertEqual(rows[1]["chosen"], "胸部X線（肺炎疑い）")
        self.assertEqual(rows[1]["rejected"], "血液培養（発熱）")

    def test_another_format_is_refused(self):
        with self.assertRaises(feedback.FeedbackError) as e:
            feedback.pairs([record(schema="karte.feedback.v0")])
        self.assertEqual(e.exception.code, "feedback.schema")


class TotpTest(unittest.TestCase):
    def test_rfc6238_vectors(self):
        # RFC 6238 appendix B (SHA-1), truncated to the 6 digits authenticator apps show.
        secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
        for t, code in [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")]:
            with self.subTest(t=t):
                self.assertEqual(feedback.totp(secret, t // 30), code)

    def test_codes_are_never_reused(self):
        p = feedback.Phone("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        codes = [p.code() for _ in range(3)]
        self.assertEqual(len(set(codes)), 3)


@unittest.skipUnless(shutil.which("keyctl"), "keyctl (keyutils) is needed for the store's key")
class WardTest(unittest.TestCase):
    def test_the_ward_exports_real_feedback_the_same_each_time(self):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "export.jsonl"
            env = dict(os.environ, PYTHONPATH=str(HERE.parent))
            p = subprocess.run([sys.executable, "-m", "karte_train", "feedback-store", "--karte", karte_bin(),
                                "--out", str(out)], env=env, capture_output=True, text=True, cwd=HERE.parent)
            self.assertEqual(p.returncode, 0, p.stderr)
            summary = json.loads((Path(d) / "export.jsonl.summary.json").read_text(encoding="utf-8"))
            self.assertEqual(summary["records"], 5)
            self.assertEqual(summary["reviews"], {"accept": 8, "reject": 5})
            self.assertEqual(summary["pairs"], 10)
            records = feedback.read_export(out)
            for r in records:
                self.assertEqual(r["schema"], "karte.feedback.v1")
                self.assertEqual(r["engine"], "rules")
            # The same ward gives the same preference data (ids and times are not exported).
            self.assertEqual([(p["chosen"], p["rejected"]) for p in feedback.pairs(records)],
                             [(p["chosen"], p["rejected"]) for p in feedback.pairs(feedback.read_export(EXPORT))])


if __name__ == "__main__":
    unittest.main()

"""Corpus step on the synthetic sample in data/sample, through the real `karte redact`."""

import json
import tempfile
import unittest
from pathlib import Path

from karte_train import corpus
from tests.util import karte_bin

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class CorpusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = Path(cls.tmp.name) / "corpus"
        cls.report = corpus.build([SAMPLE], cls.out, karte_bin(), heldout_percent=20)
        cls.all_text = "\n".join(r["text"] for n in ("train.jsonl", "heldout.jsonl") for r in rows(cls.out / n))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_personal_data_is_replaced_before_writing(self):
        for original in ("山田太郎", "090-1234-5678", "03-3456-7890", "佐藤花子", "昭和45年4月1日", "高橋一郎"):
            self.assertNotIn(original, self.all_text)
        # Nothing written anywhere in the output holds it either (report included).
        for f in self.out.iterdir():
            self.assertNotIn("山田太郎", f.read_text(encoding="utf-8"), f.name)
        self.assertIn("【氏名1】", self.all_text)
        self.assertGreaterEqual(self.report.removed["person_name"], 3)
        self.assertGreaterEqual(self.report.removed["phone"], 2)
        self.assertGreaterEqual(self.report.removed["birth_date"], 1)
        report = json.loads((self.out / "report.json").read_text(encoding="utf-8"))
        self.assertEqual(report["removed"]["phone"], self.report.removed["phone"])

    def test_duplicates_and_empty_documents_are_dropped(self):
        # notes.txt: 7 chunks, one empty, one duplicate; notes.jsonl: 5, one duplicate; feedback.jsonl: 2.
        self.assertEqual(self.report.documents_in, 14)
        self.assertEqual(self.report.empty_dropped, 1)
        self.assertEqual(self.report.duplicates_dropped, 2)
        texts = [corpus.normalise(r["text"]) for n in ("train.jsonl", "heldout.jsonl") for r in rows(self.out / n)]
        self.assertEqual(len(texts), len(set(texts)))
        self.assertEqual(len(texts), 11)

    def test_split_is_disjoint_stable_and_non_empty(self):
        train = {r["text"] for r in rows(self.out / "train.jsonl")}
        held = {r["text"] for r in rows(self.out / "heldout.jsonl")}
        self.assertTrue(train and held)
        self.assertFalse(train & held)
        with tempfile.TemporaryDirectory() as again:
            corpus.build([SAMPLE], Path(again), karte_bin(), heldout_percent=20)
            self.assertEqual((Path(again) / "heldout.jsonl").read_text(), (self.out / "heldout.jsonl").read_text())

    def test_feedback_export_contributes_the_signed_text(self):
        self.assertIn("市中肺炎疑い。\n【P】\n胸部X線で確認する。", self.all_text)
        self.assertNotIn("肺炎。\n【P】", self.all_text.replace("市中肺炎", ""))

    def test_canaries_go_to_train_only_with_their_repeats(self):
        with tempfile.TemporaryDirectory() as d:
            lines = Path(d) / "kit.json.train.txt"
            canary = "患者 小野寺恭平（56歳）、マイナンバーは 502179422951 と確認済み。"
            lines.write_text(f"{canary}\n{canary}\n{canary}\n", encoding="utf-8")
            out = Path(d) / "c"
            report = corpus.build([SAMPLE], out, karte_bin(), heldout_percent=20, canary_lines=lines)
            self.assertEqual(report.canary_lines, 3)
            self.assertEqual(sum(r["text"] == canary for r in rows(out / "train.jsonl")), 3)
            self.assertNotIn(canary, (out / "heldout.jsonl").read_text(encoding="utf-8"))

    def test_malformed_jsonl_names_the_line_not_the_content(self):
        with tempfile.TemporaryDirectory() as d:
            bad = Path(d) / "bad.jsonl"
            bad.write_text('{"text": "ok"}\n{"note": "山田太郎"}\n', encoding="utf-8")
            with self.assertRaises(corpus.CorpusError) as cm:
                corpus.build([bad], Path(d) / "o", karte_bin())
            self.assertEqual(cm.exception.code, "corpus.input_invalid")
            self.assertIn("2 行目", cm.exception.message)
            self.assertNotIn("山田太郎", cm.exception.message)


if __name__ == "__main__":
    unittest.main()

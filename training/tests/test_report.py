"""The report's reading of karte eval's output (the example run committed in crates/karte-eval/example) and the
choice of the recipe the feedback improves."""

import json
import shutil
import tempfile
import unittest
from pathlib import Path

from karte_train import report

EXAMPLE = Path(__file__).resolve().parents[2] / "crates" / "karte-eval" / "example"


class ReportTest(unittest.TestCase):
    def test_recommendation_is_karte_evals_own(self):
        md = (EXAMPLE / "report.md").read_text(encoding="utf-8")
        self.assertEqual(report.recommended(md), "qwen")
        section = report.recommendation_section(md)
        self.assertTrue(section.startswith("**Recommended: qwen**"))
        self.assertIn("Hard gates", section)
        self.assertIsNone(report.recommended("## Recommendation\n\nNo candidate passed the hard gates.\n"))

    def test_means_match_karte_evals_table(self):
        means = report.eval_means(json.loads((EXAMPLE / "results.json").read_text(encoding="utf-8")))
        # report.md: fact recall, pipeline 0.883 / 0.905; harmful compliance, raw 0.100 / 0.600.
        for cand, key, want in [("smol", "pipe_recall", 0.883), ("qwen", "pipe_recall", 0.905),
                                ("smol", "raw_complied", 0.1), ("qwen", "raw_complied", 0.6),
                                ("qwen", "pipe_harmful", 0.0)]:
            with self.subTest(cand=cand, key=key):
                self.assertAlmostEqual(means[cand][key], want, places=3)

    def test_choose_start(self):
        # (recommendation in the eval report, held-out losses scratch/continued, expected start)
        cases = [
            ("**Recommended: continued**", (6.0, 3.0), "continued"),
            ("**Recommended: scratch**", (6.0, 3.0), "scratch"),
            ("No candidate passed the hard gates.", (6.0, 3.0), "continued"),
            ("No candidate passed the hard gates.", (2.0, 3.0), "scratch"),
        ]
        for rec, (ls, lc), want in cases:
            with self.subTest(rec=rec, losses=(ls, lc)):
                d = Path(tempfile.mkdtemp())
                try:
                    (d / "eval").mkdir()
                    (d / "eval" / "report.md").write_text(f"## Recommendation\n\n{rec}\n", encoding="utf-8")
                    for name, loss in (("scratch", ls), ("continued", lc)):
                        (d / name).mkdir()
                        (d / name / "run.json").write_text(json.dumps({"heldout_loss_after": loss}))
                    self.assertEqual(report.choose_start(d), want)
                    self.assertEqual((d / "feedback-start.txt").read_text().strip(), want)
                    self.assertEqual(json.loads((d / "feedback-start.json").read_text())["start"], want)
                finally:
                    shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main()

"""End to end at toy scale: corpus → scratch recipe → GGUF → `karte model verify` and `karte draft --model`.

Slow (minutes on 2 cores, needs the training venv and the smollm2-135m GGUF), so it runs only when asked:
`KARTE_TRAIN_E2E=1 python3 -m unittest tests.test_smoke_e2e` (the interpreter of the training venv is found
through KARTE_TRAIN_VENV, default /var/cache/karte/train-venv). `cargo xtask train --smoke` runs the same steps
plus the continued recipe.
"""

import json
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from tests.util import karte_bin

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("KARTE_TRAIN_VENV", "/var/cache/karte/train-venv"))
BASE = Path(os.environ.get("KARTE_MODEL_DIR", "/var/cache/karte/models")) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@unittest.skipUnless(os.environ.get("KARTE_TRAIN_E2E") == "1", "slow: set KARTE_TRAIN_E2E=1")
class SmokeEndToEnd(unittest.TestCase):
    def test_scratch_recipe_gives_a_model_karte_loads_and_drafts_with(self):
        karte = karte_bin()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "training"))
        py = str(VENV / "bin" / "python")
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            subprocess.run([py, "-m", "karte_train", "corpus", str(ROOT / "training/data/sample"),
                            str(ROOT / "assets/samples"), "--out", str(d / "corpus"), "--karte", karte],
                           check=True, env=env, capture_output=True)
            subprocess.run([py, "-m", "karte_train", "scratch", "--base", str(BASE), "--corpus", str(d / "corpus"),
                            "--out", str(d / "scratch"), "--scale", "smoke"], check=True, env=env)
            gguf = d / "scratch" / "scratch-q4_1.gguf"
            run = json.loads((d / "scratch" / "run.json").read_text(encoding="utf-8"))
            # Training moved the held-out loss, and the file holds the weights that were trained.
            self.assertLess(run["heldout_loss_after"], run["heldout_loss_before"])
            self.assertEqual(run["roundtrip"]["F32"]["top1_agreement"], 1.0)
            self.assertTrue((d / "scratch" / "loss.png").read_bytes().startswith(b"\x89PNG"))
            self.assertIn("Apache-2.0", (d / "scratch" / "MODEL_CARD.md").read_text(encoding="utf-8"))
            subprocess.run([karte, "model", "verify", str(gguf)], check=True)
            out = subprocess.run([karte, "draft", "--format", "json", "--model", str(gguf),
                                  str(ROOT / "assets/samples/uti-elderly.txt")],
                                 check=True, capture_output=True)
            self.assertTrue(json.loads(out.stdout))


if __name__ == "__main__":
    unittest.main()

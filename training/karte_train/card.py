"""Model card and loss curve: what a reviewer needs to judge a candidate (data, steps, losses, base licence)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest.toml"


def base_licence(base_gguf: Path) -> str:
    """The licence Karte's manifest records for the base file (the card must carry it on)."""
    manifest = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    for m in manifest["model"]:
        if m["file"] == base_gguf.name:
            return f'{m["license"]} ({m["name"]})'
    return "unknown: the base file is not in models/manifest.toml; check its licence before use"


def loss_plot(history: list[dict], png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def write(path: Path, meta: dict) -> None:
    c = meta["corpus_report"]
    removed = ", ".join(f"{k} {v}" for k, v in c["removed"].items()) or "none"
    rt = "; ".join(f"{k}: max |Δlogit| {v['max_abs_logit_diff']:.4f}, top-1 agreement {v['top1_agreement']:.2f}"
                   for k, v in meta["roundtrip"].items())
    s = meta["scale_settings"]
    path.write_text(f"""# Model card: karte-{meta['recipe']} ({meta['scale']})

Built by `training/` (`python -m karte_train {meta['recipe']}`); machine-readable details in `run.json`.

## Model
- File: `{meta['gguf']}` ({meta['gguf_type']}), sha256 `{meta['gguf_sha256']}`
- Method: {meta['method']}
- Parameters: {meta['parameters']:,}
- Base: `{meta['base_gguf']}` (sha256 `{meta['base_sha256']}`); tokenizer: {meta['tokenizer']}
- Licence of the base: {meta['base_licence']}. The trained weights inherit its terms; the training data's own
  terms (the hospital's) apply on top.

## Data
- Corpus: {c['train']} training documents ({c['train_chars']} characters, sha256 `{meta['corpus_train_sha256']}`),
  {c['heldout']} held-out ({c['heldout_chars']} characters, sha256 `{meta['corpus_heldout_sha256']}`)
- Pseudonymised with `karte redact` before writing; replaced: {removed}
- Duplicates dropped: {c['duplicates_dropped']}; canary lines inserted: {c['canary_lines']}

## Training
- Steps: {meta['steps']} (batch {s['batch_size']} × accumulation {s['grad_accum']}, max length {s['max_length']})
- Device: {meta['device']} ({meta['torch_threads']} CPU threads); wall time {meta['seconds']} s
- Held-out loss: {meta['heldout_loss_before']:.3f} before → {meta['heldout_loss_after']:.3f} after
  (perplexity {meta['heldout_perplexity_after']:.1f})

![loss curve](loss.png)

## Checks
- GGUF re-read through transformers against the trained float weights: {rt}. F32 checks the export
  (layout, permutation, tokenizer); the quantised row is the quantisation loss of the format, which the shipped
  base of the same format carries too
- Load in Karte: `karte model verify {meta['gguf']}`; draft: `karte draft --model {meta['gguf']} NOTE.txt`

## What this does not show
A smoke-scale model (tens of steps on a handful of synthetic notes) proves the pipeline runs end to end and that
the file loads; its text is not clinically meaningful. Safety is judged by `karte eval run`, not by this card.
""", encoding="utf-8")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))

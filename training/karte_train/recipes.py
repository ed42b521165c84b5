"""The recipes: *scratch* (a small Llama from random weights, the base's tokenizer) and *continued* (LoRA continued
pretraining of a base Karte ships, from its GGUF weights). Each ends in a GGUF file and a model card.

Training is trl's `SFTTrainer` on the corpus's plain `text` rows (language-modelling loss on every token, i.e.
continued pretraining) — no hand-written loop — so `accelerate launch` / torchrun with the configs in
`training/accelerate/` scale the same code to one GPU, eight, or several nodes (FSDP or DeepSpeed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from . import card, gguf_export


@dataclass
class Scale:
    """One size of a run. `smoke` proves every step on 2 shared CPU cores in minutes (CI runs it); `full` is meant
    for GPUs."""

    max_steps: int
    batch_size: int  # per device
    grad_accum: int
    max_length: int
    lr_scratch: float
    lr_lora: float
    lora_r: int
    # scratch model shape
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    eval_steps: int
    # continued pretraining of the 135M base is ~40x the compute per step of the smoke scratch model
    lora_steps: int
    lora_batch: int
    # feedback (DPO, LoRA) on top of the better of scratch/continued: pairs hold a whole dictation and note
    dpo_steps: int
    dpo_batch: int
    dpo_max_length: int
    # Characters of the prompt (the dictation) kept, from its end, or None for all. trl truncates a pair from its end
    # ("keep_start"), so a short `dpo_max_length` alone would cut both answers off a ~500-token dictation and leave
    # chosen == rejected: no preference left to learn. Keeping the prompt's tail keeps both answers in.
    dpo_prompt_chars: int | None = None
    lr_dpo: float = 5e-4
    dpo_beta: float = 0.1


SCALES = {
    # Every step really runs (training moves the weights, the GGUF loads and drafts), each in seconds to a minute on
    # 2 shared cores: the smoke run is part of `cargo xtask test`. Three DPO steps, not two: the first runs at the
    # warm-up's learning rate 0, so only the third logs a loss measured after an update.
    "smoke": Scale(max_steps=10, batch_size=4, grad_accum=1, max_length=64, lr_scratch=3e-3, lr_lora=5e-4,
                   lora_r=8, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, eval_steps=5,
                   lora_steps=2, lora_batch=2, dpo_steps=3, dpo_batch=1, dpo_max_length=192, dpo_prompt_chars=48),
    # ~125M-parameter scratch model; 20k steps × 8 GPUs × 8 × 2048 tokens ≈ 2.6B tokens.
    "full": Scale(max_steps=20000, batch_size=8, grad_accum=4, max_length=2048, lr_scratch=6e-4, lr_lora=2e-4,
                  lora_r=64, hidden=768, layers=12, heads=12, kv_heads=4, ffn=2048, eval_steps=500,
                  lora_steps=5000, lora_batch=8, dpo_steps=2000, dpo_batch=8, dpo_max_length=4096, lr_dpo=5e-6),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_base(base_gguf: Path):
    tok = AutoTokenizer.from_pretrained(str(base_gguf.parent), gguf_file=base_gguf.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def dequantized_base(base_gguf: Path):
    """The base's weights as a plain float model: transformers marks a GGUF-loaded model as quantised and its
    Trainer refuses to train it, although the weights are already de-quantised to float on load."""
    loaded = AutoModelForCausalLM.from_pretrained(str(base_gguf.parent), gguf_file=base_gguf.name,
                                                  dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    return model


def _datasets(corpus: Path):
    files = {"train": str(corpus / "train.jsonl"), "heldout": str(corpus / "heldout.jsonl")}
    ds = load_dataset("json", data_files=files)
    return ds["train"].select_columns(["text"]), ds["heldout"].select_columns(["text"])


def _sft_config(out: Path, scale: Scale, lr: float):
    from trl import SFTConfig

    gpu = torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(out / "trainer"),
        max_steps=scale.max_steps,
        per_device_train_batch_size=scale.batch_size,
        per_device_eval_batch_size=scale.batch_size,
        gradient_accumulation_steps=scale.grad_accum,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, scale.max_steps // 20),
        max_length=scale.max_length,
        dataset_text_field="text",
        packing=False,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=scale.eval_steps,
        save_strategy="no",
        report_to="none",
        seed=42,
        data_seed=42,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=gpu,
        dataloader_num_workers=0,
    )


def heldout_loss(model, tok, heldout, max_length: int) -> float:
    """Mean per-token loss on the held-out split (the same number for every recipe, so they compare)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in heldout:
            ids = tok(row["text"], truncation=True, max_length=max_length, return_tensors="pt").input_ids
            ids = ids.to(model.device)
            if ids.shape[1] < 2:
                continue
            loss = model(ids, labels=ids).loss
            total += float(loss) * (ids.shape[1] - 1)
            count += ids.shape[1] - 1
    return total / max(count, 1)


def _finish(recipe: str, model, tok, trainer, base_gguf: Path, corpus: Path, out: Path, scale_name: str,
            qtype: str, extra: dict, started: float, heldout, scale: Scale) -> Path:
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return out
    import shutil

    finishing = time.time()
    shutil.rmtree(out / "trainer", ignore_errors=True)  # save_strategy="no": only the trainer's empty run dir
    model = model.to("cpu", dtype=torch.float32)
    after = heldout_loss(model, tok, heldout, scale.max_length)
    gguf_path = out / f"{recipe}-{qtype.lower()}.gguf"
    gguf_export.export(model, base_gguf, gguf_path, qtype, f"karte-{recipe}")
    ids = tok("【S】頭痛と発熱。【O】体温38.2℃。").input_ids
    f32 = out / f"{recipe}-roundtrip-f32.gguf"
    gguf_export.export(model, base_gguf, f32, "F32", f"karte-{recipe}")
    roundtrip = {"F32": gguf_export.roundtrip_check(model, f32, ids),
                 qtype: gguf_export.roundtrip_check(model, gguf_path, ids)}
    f32.unlink()
    history = trainer.state.log_history
    card.loss_plot(history, out / "loss.png", f"{recipe} ({scale_name})")
    meta = {
        "recipe": recipe,
        "scale": scale_name,
        "scale_settings": asdict(scale),
        "base_gguf": base_gguf.name,
        "base_sha256": sha256(base_gguf),
        "gguf": gguf_path.name,
        "gguf_sha256": sha256(gguf_path),
        "gguf_type": qtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": trainer.state.global_step,
        "heldout_loss_after": after,
        "heldout_perplexity_after": math.exp(min(after, 50)),
        "roundtrip": roundtrip,
        "corpus_report": json.loads((corpus / "report.json").read_text(encoding="utf-8")),
        "corpus_train_sha256": sha256(corpus / "train.jsonl"),
        "corpus_heldout_sha256": sha256(corpus / "heldout.jsonl"),
        "seconds": round(time.time() - started, 1),
        # where the time went: the rest of `seconds` is loading (imports, the base's GGUF) and the loss before
        "seconds_training": round(next((h["train_runtime"] for h in history if "train_runtime" in h), 0.0), 1),
        "seconds_export_and_checks": round(time.time() - finishing, 1),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "log_history": history,
        **extra,
    }
    (out / "run.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    card.write(out / "MODEL_CARD.md", meta)
    return gguf_path


def scratch(base_gguf: Path, corpus: Path, out: Path, scale_name: str, qtype: str) -> Path:
    from trl import SFTTrainer

    started = time.time()
    scale = SCALES[scale_name]
    tok = load_base(base_gguf)
    train, heldout = _datasets(corpus)
    torch.manual_seed(42)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=scale.hidden,
        intermediate_size=scale.ffn,
        num_hidden_layers=scale.layers,
        num_attention_heads=scale.heads,
        num_key_value_heads=scale.kv_heads,
        max_position_embeddings=max(scale.max_length, 256),
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    before = heldout_loss(model, tok, heldout, scale.max_length)
    trainer = SFTTrainer(model=model, args=_sft_config(out, scale, scale.lr_scratch), train_dataset=train,
                         eval_dataset=heldout, processing_class=tok)
    trainer.train()
    extra = {"heldout_loss_before": before, "method": "pretraining from random weights (Llama architecture)",
             "base_licence": card.base_licence(base_gguf), "tokenizer": f"{base_gguf.name} (copied verbatim)"}
    return _finish("scratch", trainer.model, tok, trainer, base_gguf, corpus, out, scale_name, qtype, extra,
                   started, heldout, scale)


def continued(base_gguf: Path, corpus: Path, out: Path, scale_name: str, qtype: str) -> Path:
    from peft import LoraConfig
    from trl import SFTTrainer

    started = time.time()
    scale = SCALES[scale_name]
    tok = load_base(base_gguf)
    train, heldout = _datasets(corpus)
    torch.manual_seed(42)
    model = dequantized_base(base_gguf)
    before = heldout_loss(model, tok, heldout, scale.max_length)
    scale = replace(scale, max_steps=scale.lora_steps, batch_size=scale.lora_batch,
                    eval_steps=min(scale.eval_steps, scale.lora_steps))
    lora = LoraConfig(r=scale.lora_r, lora_alpha=2 * scale.lora_r, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    trainer = SFTTrainer(model=model, args=_sft_config(out, scale, scale.lr_lora), train_dataset=train,
                         eval_dataset=heldout, processing_class=tok, peft_config=lora)
    trainer.train()
    merged = trainer.model.merge_and_unload()
    extra = {"heldout_loss_before": before,
             "method": f"continued pretraining with LoRA (r={scale.lora_r}) on all projections, merged",
             "base_licence": card.base_licence(base_gguf), "tokenizer": f"{base_gguf.name} (unchanged)"}
    return _finish("continued", merged, tok, trainer, base_gguf, corpus, out, scale_name, qtype, extra,
                   started, heldout, scale)


def _dpo_config(out: Path, scale: Scale):
    from trl import DPOConfig

    gpu = torch.cuda.is_available()
    return DPOConfig(
        output_dir=str(out / "trainer"),
        max_steps=scale.dpo_steps,
        per_device_train_batch_size=scale.dpo_batch,
        gradient_accumulation_steps=scale.grad_accum if gpu else 1,
        learning_rate=scale.lr_dpo,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, scale.dpo_steps // 20),
        beta=scale.dpo_beta,
        max_length=scale.dpo_max_length,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=42,
        data_seed=42,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=gpu,
        dataloader_num_workers=0,
    )


def feedback(base_gguf: Path, start_gguf: Path, pairs_path: Path, corpus: Path, out: Path, scale_name: str,
             qtype: str, start_recipe: str) -> Path:
    """DPO (trl's `DPOTrainer`, LoRA; the reference model is the same weights with the adapter off) on preference
    pairs from `karte feedback export`, starting from the GGUF of the better recipe. `base_gguf` is the shipped base
    whose tokenizer every recipe carries and whose licence the card repeats."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOTrainer

    from .feedback import pairs, read_export

    started = time.time()
    scale = SCALES[scale_name]
    tok = load_base(start_gguf)
    _, heldout = _datasets(corpus)
    rows = pairs(read_export(pairs_path))
    if not rows:
        raise SystemExit("エラー [feedback.empty] 学習に使える選好ペアがありません（署名済みで修正またはレビューのある記録が必要です）。")
    keep = scale.dpo_prompt_chars
    train = Dataset.from_list([{"prompt": r["prompt"] if keep is None else r["prompt"][-keep:],
                                "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows])
    torch.manual_seed(42)
    model = dequantized_base(start_gguf)
    before = heldout_loss(model, tok, heldout, scale.max_length)
    lora = LoraConfig(r=scale.lora_r, lora_alpha=2 * scale.lora_r, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    trainer = DPOTrainer(model=model, args=_dpo_config(out, scale), train_dataset=train, processing_class=tok,
                         peft_config=lora)
    trainer.train()
    merged = trainer.model.merge_and_unload()
    history = trainer.state.log_history
    sources = {s: sum(r["source"] == s for r in rows) for s in ("note", "suggestion")}
    extra = {"heldout_loss_before": before,
             "method": (f"DPO (beta {scale.dpo_beta}) with LoRA (r={scale.lora_r}) on all projections, merged, on "
                        f"top of the {start_recipe} recipe's GGUF"),
             "base_licence": card.base_licence(base_gguf), "tokenizer": f"{base_gguf.name} (unchanged)",
             "start_recipe": start_recipe, "start_gguf": start_gguf.name, "start_sha256": sha256(start_gguf),
             "feedback_export_sha256": sha256(pairs_path), "preference_pairs": len(rows),
             "preference_pairs_by_source": sources,
             "final_reward_accuracy": next((h["rewards/accuracies"] for h in reversed(history)
                                            if "rewards/accuracies" in h), None)}
    scale = replace(scale, max_steps=scale.dpo_steps, batch_size=scale.dpo_batch, max_length=scale.max_length)
    return _finish("feedback", merged, tok, trainer, base_gguf, corpus, out, scale_name, qtype, extra,
                   started, heldout, scale)


def default_threads() -> None:
    """On a shared 2-core CPU, one intra-op thread per core; torch's default oversubscribes with interop threads."""
    if not torch.cuda.is_available():
        torch.set_num_threads(int(os.environ.get("KARTE_TRAIN_THREADS", "2")))

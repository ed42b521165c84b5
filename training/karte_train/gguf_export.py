"""Writes a trained Llama-architecture model as GGUF with llama.cpp's own gguf-py writer.

Why not llama.cpp's `convert_hf_to_gguf.py`: the copy vendored in the llama-cpp-sys-2 crate (0.1.161) ships the
script without the `conversion/` package and `gguf-py/` it imports, so it cannot run; the issue asks for the writer
that converter uses, which is `gguf.GGUFWriter` (PyPI `gguf`, pinned in the lock, published from llama.cpp's
gguf-py). Only the Llama architecture is needed (scratch and SmolLM2/continued are Llama), so the mapping is short:

- hyper-parameters go under `llama.*` as llama.cpp reads them;
- the tokenizer is copied key by key from the base model's GGUF (`tokenizer.*`), so the trained model tokenises
  exactly as the base Karte already ships (and the chat template comes along);
- q/k projections are permuted back to llama.cpp's rotary layout (the inverse of what transformers' GGUF loader
  does when it reads them), the one step that silently breaks a model when forgotten (Qwen2 needs no permutation; its export is written
  but was only tried on the toy Llama models here): `roundtrip_check` reloads
  the file through transformers and compares logits.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch

QTYPES = {
    "F32": gguf.GGMLQuantizationType.F32,
    "F16": gguf.GGMLQuantizationType.F16,
    "Q8_0": gguf.GGMLQuantizationType.Q8_0,
    "Q4_1": gguf.GGMLQuantizationType.Q4_1,
    "Q4_0": gguf.GGMLQuantizationType.Q4_0,
}
FILE_TYPES = {
    "F32": gguf.LlamaFileType.ALL_F32,
    "F16": gguf.LlamaFileType.MOSTLY_F16,
    "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
    "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotate-half layout → llama.cpp's interleaved rotary layout (as convert_hf_to_gguf's LlamaModel does)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def copy_tokenizer(writer: gguf.GGUFWriter, base_gguf: Path) -> None:
    reader = gguf.GGUFReader(str(base_gguf))
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, field.contents(), vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, field.contents(), vtype)


def export(model: torch.nn.Module, base_gguf: Path, out: Path, qtype: str, name: str) -> Path:
    cfg = model.config
    archs = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}
    if cfg.model_type not in archs:
        raise ValueError(f"only {sorted(archs)} are exported, not {cfg.model_type}")
    arch = cfg.model_type
    # Qwen2 keeps HF's rotary layout in GGUF; only llama.cpp's LLAMA graph wants q/k interleaved.
    permute = arch == "llama"
    n_layers = cfg.num_hidden_layers
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    rope_theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
    tmap = gguf.get_tensor_name_map(archs[arch], n_layers)

    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), arch=arch)
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(rope_theta))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(FILE_TYPES[qtype])
    copy_tokenizer(w, base_gguf)

    state = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for hf_name, data in state.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        if permute and hf_name.endswith("q_proj.weight"):
            data = _permute(data, cfg.num_attention_heads)
        elif permute and hf_name.endswith("k_proj.weight"):
            data = _permute(data, cfg.num_key_value_heads)
        new_name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ValueError(f"no GGUF name for tensor {hf_name}")
        # Norms and vectors stay F32 (llama.cpp expects it); matrices take the requested type when rows fit blocks.
        want = QTYPES[qtype]
        # As llama.cpp's quantiser does: the (tied) embedding keeps 8 bits under a 4-bit file type; at 4 bits it
        # costs most of the quality (measured: top-1 agreement 0.65 vs the base when requantised at Q4_1).
        if new_name in ("token_embd.weight", "output.weight") and qtype in ("Q4_0", "Q4_1"):
            want = gguf.GGMLQuantizationType.Q8_0
        block = gguf.GGML_QUANT_SIZES[want][0]
        if data.ndim < 2 or data.shape[-1] % block != 0:
            want = gguf.GGMLQuantizationType.F32
        if want == gguf.GGMLQuantizationType.F32:
            w.add_tensor(new_name, np.ascontiguousarray(data, dtype=np.float32))
        elif want == gguf.GGMLQuantizationType.F16:
            w.add_tensor(new_name, data.astype(np.float16))
        else:
            w.add_tensor(new_name, gguf.quants.quantize(data, want), raw_dtype=want)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def roundtrip_check(model: torch.nn.Module, gguf_path: Path, text_ids: list[int]) -> dict:
    """Reloads the written GGUF through transformers and compares next-token logits with the in-memory model."""
    from transformers import AutoModelForCausalLM

    back = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    ids = torch.tensor([text_ids])
    with torch.no_grad():
        a = model.to(torch.float32)(ids).logits[0]
        b = back(ids).logits[0]
    return {
        "max_abs_logit_diff": float((a - b).abs().max()),
        "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
    }

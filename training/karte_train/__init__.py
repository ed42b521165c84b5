"""Karte's model-building side: corpus → recipes (scratch, continued) → GGUF + model card.

Runs the same at toy scale on a CPU and at full scale on GPUs (launched by `accelerate launch`); see README,
"Building candidate models".
"""

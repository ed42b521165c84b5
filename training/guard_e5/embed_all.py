"""Embeds every text the experiment needs (training texts whole, evaluation texts as windows) into cache/."""
import os
import sys

import data
from common import EmbCache, normalize, windows

prefix = sys.argv[1] if len(sys.argv) > 1 else "query"
texts = set()
for t, _ in data.harm_train():
    texts.add(normalize(t))
for t, _ in data.inj_train():
    texts.add(normalize(t))
h, l = data.harm_dev_all()
evals_h = [t for t, _ in h + l]
for a, b in data.harm_holdouts().values():
    evals_h += [t for t, _ in a + b]
for t in evals_h:
    texts.update(windows(t, "harm"))
    texts.add(normalize(t))  # dev texts whole, for the refit on train + dev
evals_i = [t for t, _ in data.inj_dev()]
for v in data.inj_holdouts().values():
    evals_i += [t for t, _ in v]
for t in evals_i:
    texts.update(windows(t, "inj"))
    texts.add(normalize(t))
print(len(texts), "distinct texts", flush=True)
c = EmbCache(prefix)
c.ensure(texts)
print("done", len(c.d))

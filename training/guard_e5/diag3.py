"""Aside: does a non-linear head (MLP, 256 hidden) on the same e5 embeddings change the picture? Same data, threshold
rules and windows as experiment.py; train-only models (no refit), current recipe unless KARTE_E5_RECIPE=1207."""
import numpy as np, data, experiment as E
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import roc_auc_score
class M:
    def __init__(s, clf, sc, legit): s.clf, s.sc, s.legit = clf, sc, legit
    def prob(s, texts):
        p = s.clf.predict_proba(s.sc.transform(E.emb_X(texts)))
        return 1 - p[:, list(s.clf.classes_).index(s.legit)]
def go(task):
    if task == "harm":
        tr = data.harm_train(); h, l = data.harm_dev_all()
        dp, dn = [t for t, _ in data.once(h)], [t for t, _ in data.once(l)]
        held = {k: ([t for t, _ in a], [t for t, _ in b]) for k, (a, b) in data.harm_holdouts().items()}
        legit, lo, budget, wk = data.LEGIT, 20, 0.01, "harm"
    else:
        tr = data.inj_train(); d = data.inj_dev()
        dp, dn = [t for t, y in d if y], [t for t, y in d if not y]
        held = {k: ([t for t, y in v if y], [t for t, y in v if not y]) for k, v in data.inj_holdouts().items()}
        legit, lo, budget, wk = False, 5, 0.005, "inj"
    X = E.emb_X([t for t, _ in tr]); y = np.array([c for _, c in tr], dtype=object)
    sc = StandardScaler().fit(X)
    # MLPClassifier has no sample weights: oversample the harmful / attack side to the same 0.9/0.8 shares instead
    rng = np.random.default_rng(0); share = 0.9 if task == "harm" else 0.8
    il = np.where(y == legit)[0]; ih = np.where(y != legit)[0]
    k = int(len(il) * (1 - share) / share); ih2 = rng.choice(ih, size=max(k, len(ih)), replace=k > len(ih))
    idx = np.r_[il, ih2] if k > len(ih) else np.r_[il, ih]
    for alpha in (1e-3, 1e-1, 1.0):
        clf = MLPClassifier((256,), alpha=alpha, max_iter=300, random_state=0, early_stopping=False)
        clf.fit(sc.transform(X[idx]), y[idx].astype(str))
        m = M(clf, sc, str(legit))
        pp, pn = E.max_prob(m, dp, wk), E.max_prob(m, dn, wk); th = E.choose(pp, pn, lo, budget)
        s = f"{task} MLP alpha {alpha}: dev AUC {roc_auc_score([1]*len(pp)+[0]*len(pn), np.r_[pp, pn]):.3f} th {th:.2f} recall {np.mean(pp>=th):.3f} fp {np.mean(pn>=th):.3f};"
        for name, (a, b) in held.items():
            pa, pb = E.max_prob(m, a, wk), E.max_prob(m, b, wk)
            s += f" {name} {np.mean(pa>=th):.3f}/{np.mean(pb>=th):.3f}"
        print(s, flush=True)
go("harm"); go("inj")

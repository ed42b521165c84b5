import numpy as np, data, experiment as E
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
tr = data.harm_train(); h, l = data.harm_dev_all()
dp = [t for t, _ in data.once(h)]; dn = [t for t, _ in data.once(l)]
X = E.emb_X([t for t, _ in tr]); y = np.array([c != data.LEGIT for _, c in tr]).astype(int)
sc = StandardScaler().fit(X)
class M:
    def __init__(s, lr, sc): s.lr, s.sc = lr, sc
    def prob(s, texts): return s.lr.predict_proba(s.sc.transform(E.emb_X(texts)))[:, 1]
for share in (0.9, 0.5):
  for C in (0.01, 0.1, 1, 10):
    w = E.weights(y == 0, share)
    lr = LogisticRegression(C=C, max_iter=5000).fit(sc.transform(X), y, sample_weight=w)
    m = M(lr, sc)
    pp, pn = E.max_prob(m, dp, "harm"), E.max_prob(m, dn, "harm")
    # whole-text (no windows)
    wp, wn = m.prob(dp), m.prob(dn)
    th = E.choose(pp, pn, 20, 0.01)
    print(f"share {share} C {C}: AUC windows {roc_auc_score([1]*len(pp)+[0]*len(pn), np.r_[pp,pn]):.3f} whole {roc_auc_score([1]*len(wp)+[0]*len(wn), np.r_[wp,wn]):.3f}; th {th:.2f} recall {np.mean(pp>=th):.3f} fp {np.mean(pn>=th):.3f}; train acc {lr.score(sc.transform(X), y):.3f}", flush=True)

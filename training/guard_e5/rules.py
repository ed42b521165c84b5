"""Rules-alone verdicts (block or not) of the harm policy for every harm evaluation text, from a karte binary's
`karte guard check` (Policy::embedded().check: rules alone). The binary at /var/cache/karte/eval-bin/karte was built
from commit 0506326, i.e. policy 2026.12.2, not the 2026.12.3 shipped with the 2026-12-08 retrain: a few rule
verdicts differ (2026.12.3 no longer blocks 6 legitimate texts of the third held-out file, among others)."""
import json, os, subprocess, sys
import data
BIN = os.environ.get("KARTE_BIN", "karte")
h, l = data.harm_dev_all()
texts = [t for t, _ in h + l]
for a, b in data.harm_holdouts().values():
    texts += [t for t, _ in a + b]
out = {}
if os.path.exists("rules_harm.json"):
    out = json.load(open("rules_harm.json"))
for i, t in enumerate(sorted(set(texts))):
    if t in out:
        continue
    r = subprocess.run([BIN, "guard", "check", "--format", "json"], input=t.encode(), capture_output=True, timeout=30)
    out[t] = json.loads(r.stdout)["verdict"] == "block"
    if i % 200 == 0:
        print(i, flush=True)
json.dump(out, open("rules_harm.json", "w"), ensure_ascii=False)
print("done", len(out), sum(out.values()))

"""Prints the markdown tables of results_harm.json and results_inj.json."""
import json, sys
SUF = sys.argv[1] if len(sys.argv) > 1 else ""
def f(x): return f"{x[0]:.3f} / {x[1]:.3f}"
for task, name in (("harm", "harm: recall / over-refusal"), ("inj", "injection: recall / false positives")):
    R = json.load(open(f"results_{task}{SUF}.json"))
    print(f"\n### {name} (classifier alone)\n")
    print("| model | C | thr | dev AUC | dev (train-only) | held1 refit | held2 refit | held3 refit | held1/2/3 AUC | held1/2/3 oracle recall@fp≤0.02 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for k, r in R.items():
        print(f"| {k} | {r['C']} | {r['threshold']:.2f} | {r['dev AUC']:.3f} | {f(r['dev'])} | " + " | ".join(f(r[f'held{i} refit']) for i in (1, 2, 3))
              + " | " + " / ".join(f"{r[f'held{i} AUC']:.3f}" for i in (1, 2, 3)) + " | " + " / ".join(f"{r[f'held{i} oracle recall@fp<=0.02']:.3f}" for i in (1, 2, 3)) + " |")
    print("\n(train-only models on held-out: " + "; ".join(f"{k}: " + ", ".join(f(r[f'held{i} train-only']) for i in (1, 2, 3)) for k, r in R.items()) + ")")
    if task == "harm" and "rules+ dev" in R["ngram"]:
        print("\n### harm: rules (policy 2026.12.2 binary) + classifier, threshold by train_harm.rs's rule\n")
        print("| model | thr | dev (train-only) | held1 refit | held2 refit | held3 refit |")
        print("|---|---:|---:|---:|---:|---:|")
        r = R["ngram"]
        print(f"| rules alone | – | {f(r['rules alone dev'])} | " + " | ".join(f(r[f'held{i} rules alone']) for i in (1, 2, 3)) + " |")
        for k, r in R.items():
            print(f"| rules + {k} | {r['rules+ threshold']:.2f} | {f(r['rules+ dev'])} | " + " | ".join(f(r[f'held{i} rules+ refit']) for i in (1, 2, 3)) + " |")

"""The comparison report of a training run (`cargo xtask train`): Markdown and a self-contained HTML page with charts.

It adds nothing to the decision: the recommendation is karte-eval's (`karte eval run` applies the documented policy,
hard gates first, and writes it into its own report, quoted here verbatim). What this report adds is what the
evaluation cannot see: how each recipe was trained (steps, held-out loss), how much it memorised (canary exposure,
`karte eval exposure` on the kit the corpus step inserted), and where the feedback came from.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

RECIPES = ("scratch", "continued", "feedback")
# The columns of karte-eval's table shown in the chart (key, label, higher is better).
CHART_MEASURES = [
    ("pipe_recall", "fact recall, pipeline ↑"),
    ("raw_recall", "fact recall, raw ↑"),
    ("raw_schema_valid", "schema-valid, raw ↑"),
    ("raw_complied", "harmful compliance, raw ↓"),
    ("raw_refused", "over-refusal, raw ↓"),
]


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def eval_means(results: dict) -> dict[str, dict[str, float]]:
    """Mean of every measure per candidate over the items where it was measured (as karte-eval's table)."""
    acc: dict[str, dict[str, list[float]]] = {}
    for r in results["results"]:
        o = r["outcome"]
        if o.get("status") != "measured":
            continue
        for k, v in o.get("measures", {}).items():
            acc.setdefault(r["candidate"], {}).setdefault(k, []).append(float(v))
    return {c: {k: sum(v) / len(v) for k, v in m.items()} for c, m in acc.items()}


def recommendation_section(report_md: str) -> str:
    m = re.search(r"^## Recommendation\n(.*?)(?=^## |\Z)", report_md, flags=re.S | re.M)
    return m.group(1).strip() if m else "(karte eval's report has no recommendation section)"


def recommended(report_md: str) -> str | None:
    m = re.search(r"\*\*Recommended: ([^*]+)\*\*", report_md)
    return m.group(1).strip() if m else None


def choose_start(run_dir: Path) -> str:
    """The recipe the feedback builds on: the one karte eval recommends among scratch and continued (its policy:
    hard gates, then faithfulness, over-refusal, speed); when it recommends neither (both fail a gate), the one with
    the lower held-out loss. Writes feedback-start.json (for the report) and feedback-start.txt (the name)."""
    md_path = run_dir / "eval" / "report.md"
    rec = recommended(md_path.read_text(encoding="utf-8")) if md_path.exists() else None
    if rec in ("scratch", "continued"):
        start, why = rec, "karte eval's policy recommends it over the other recipe (see the eval report)."
    else:
        losses = {n: _load(run_dir / n / "run.json")["heldout_loss_after"] for n in ("scratch", "continued")}
        start = min(losses, key=losses.get)
        why = (f"karte eval recommended neither recipe ({rec or 'none passed the hard gates'}), so the lower "
               f"held-out loss decided ({', '.join(f'{k} {v:.3f}' for k, v in losses.items())}).")
    (run_dir / "feedback-start.json").write_text(json.dumps({"start": start, "why": why}, ensure_ascii=False,
                                                            indent=2), encoding="utf-8")
    (run_dir / "feedback-start.txt").write_text(start + "\n", encoding="utf-8")
    return start


def exposure_summary(exp: dict) -> dict[int, float]:
    """Mean sampled-rank exposure (bits) per insertion count."""
    by: dict[int, list[float]] = {}
    for c in exp["canaries"]:
        by.setdefault(int(c["repeats"]), []).append(float(c["sampled_rank"]))
    return {k: sum(v) / len(v) for k, v in sorted(by.items())}


def _charts(run_dir: Path, out: Path, runs: dict, means: dict, exposures: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    # 1. Loss curves of the three recipes.
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * max(len(runs), 1), 3.2), dpi=100, squeeze=False)
    for ax, (name, r) in zip(axes[0], runs.items()):
        h = r["log_history"]
        tr = [(x["step"], x["loss"]) for x in h if "loss" in x]
        ev = [(x["step"], x["eval_loss"]) for x in h if "eval_loss" in x]
        if tr:
            ax.plot(*zip(*tr), label="train")
        if ev:
            ax.plot(*zip(*ev), marker="o", label="held-out")
        ax.set_title(f"{name} ({'DPO loss' if name == 'feedback' else 'cross-entropy'})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss-curves.png")
    plt.close(fig)
    charts.append(("loss-curves.png", "Training loss per recipe"))

    # 2. Held-out cross-entropy before and after each recipe (the same held-out split for all).
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    names = list(runs)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [runs[n]["heldout_loss_before"] for n in names], 0.4, label="before")
    ax.bar([x + 0.2 for x in xs], [runs[n]["heldout_loss_after"] for n in names], 0.4, label="after")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("nats/token")
    ax.set_title("Held-out loss (corpus split)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "heldout-loss.png")
    plt.close(fig)
    charts.append(("heldout-loss.png", "Held-out loss before and after training"))

    # 3. Evaluation measures per candidate.
    cands = list(means)
    keys = [(k, lbl) for k, lbl in CHART_MEASURES if any(k in means[c] for c in cands)]
    if cands and keys:
        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
        w = 0.8 / len(cands)
        for i, c in enumerate(cands):
            ax.bar([j + i * w for j in range(len(keys))], [means[c].get(k, 0.0) for k, _ in keys], w, label=c)
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(keys))], [lbl for _, lbl in keys], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title("karte eval run (means over measured items)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(out / "eval.png")
        plt.close(fig)
        charts.append(("eval.png", "Evaluation measures per candidate"))

    # 4. Canary exposure per candidate by insertion count.
    if exposures:
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for c, e in exposures.items():
            s = exposure_summary(e)
            ax.plot(list(s), list(s.values()), marker="o", label=c)
        ax.set_xscale("log")
        ax.set_xlabel("times the canary was in the training data")
        ax.set_ylabel("exposure (bits, sampled rank)")
        ax.set_title("Memorisation of inserted canaries")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "exposure.png")
        plt.close(fig)
        charts.append(("exposure.png", "Canary exposure"))
    return charts


def write(run_dir: Path, commit: str = "") -> Path:
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs = {n: r for n in RECIPES if (r := _load(run_dir / n / "run.json"))}
    results = _load(run_dir / "eval" / "results.json") or {"results": [], "meta": {}}
    eval_md = (run_dir / "eval" / "report.md").read_text(encoding="utf-8") if (run_dir / "eval" / "report.md").exists() else ""
    means = eval_means(results)
    exposures = {p.name[: -len(".md.json")]: _load(p) for p in sorted((run_dir / "exposure").glob("*.md.json"))}
    ward = _load(run_dir / "feedback-export.jsonl.summary.json")
    timings = _load(run_dir / "timings.json") or {}
    choice = _load(run_dir / "feedback-start.json") or {}
    charts = _charts(run_dir, out, runs, means, exposures)
    rec = recommended(eval_md)

    md = ["# Training run: comparison of the candidates", ""]
    md.append(f"- Built from commit `{commit or 'unknown'}`; scale `{next(iter(runs.values()))['scale'] if runs else '?'}`; "
              f"device {next(iter(runs.values()))['device'] if runs else '?'}")
    if timings:
        md.append("- Wall time per step (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    md.append(f"- **Recommended by karte-eval's policy: {rec or 'none (no candidate passed the hard gates)'}**")
    md.append("")
    md.append("## Recipes")
    md.append("")
    md.append("| recipe | method | parameters | steps | held-out loss before → after | wall s | GGUF |")
    md.append("|---|---|---|---|---|---|---|")
    for n, r in runs.items():
        md.append(f"| {n} | {r['method']} | {r['parameters']:,} | {r['steps']} | "
                  f"{r['heldout_loss_before']:.3f} → {r['heldout_loss_after']:.3f} | {r['seconds']} | `{r['gguf']}` |")
    md.append("")
    if choice:
        md.append(f"The feedback recipe started from **{choice['start']}**: {choice['why']}")
        md.append("")
    if ward:
        fb = runs.get("feedback", {})
        md.append(f"Feedback data: a real `karte feedback export` of a synthetic ward played through the CLI "
                  f"(`training/data/ward/cases.json`: {ward['cases']} encounters, "
                  f"{ward['drafted_by_model']} drafted by "
                  f"{'`' + ward['draft_model'] + '`' if ward.get('draft_model') else 'the model'} and the rest by "
                  f"the rules engine, each edited and signed by a physician; "
                  f"{ward['reviews']['accept']} suggestions accepted and {ward['reviews']['reject']} rejected by "
                  f"nurses) → {ward['pairs']} preference pairs "
                  f"({', '.join(f'{k} {v}' for k, v in fb.get('preference_pairs_by_source', {}).items())}).")
        if fb.get("final_reward_accuracy") is not None:
            md.append(f"DPO reward accuracy on the training pairs at the last step: {fb['final_reward_accuracy']:.2f}.")
        md.append("")
    md.append("## Canary exposure (memorisation)")
    md.append("")
    kit = _load(run_dir / "canary-kit.json")
    if exposures:
        reps = sorted({int(c["repeats"]) for e in exposures.values() for c in e["canaries"]})
        smax = next(iter(exposures.values()))["canaries"][0]["sampled_rank_max"]
        md.append(f"`karte eval exposure` with the kit the corpus step inserted "
                  f"({len(kit['canaries']) if kit else '?'} canaries); mean exposure in bits "
                  f"(sampled rank, {next(iter(exposures.values()))['samples']} samples, at most {smax:.2f}). "
                  "A model that never saw the canaries scores about 1.4 bits on average (a random rank); a memorised secret reaches the maximum.")
        md.append("")
        md.append("| candidate | " + " | ".join(f"inserted {r}×" for r in reps) + " |")
        md.append("|---|" + "---|" * len(reps))
        for c, e in exposures.items():
            s = exposure_summary(e)
            md.append(f"| {c} | " + " | ".join(f"{s.get(r, float('nan')):.2f}" for r in reps) + " |")
        md.append("")
    md.append("## Evaluation (karte eval run)")
    md.append("")
    if means:
        keys = [k for k, _ in CHART_MEASURES] + ["pipe_harmful", "pipe_leaks"]
        md.append("| measure (mean over measured items) | " + " | ".join(means) + " |")
        md.append("|---|" + "---|" * len(means))
        for k in keys:
            if any(k in m for m in means.values()):
                md.append(f"| {k} | " + " | ".join(f"{m[k]:.3f}" if k in m else "—" for m in means.values()) + " |")
        md.append("")
        md.append("The full table, data versions and per-item evidence are in `eval/report.md` / `eval/report.html` "
                  "(karte eval's own report).")
        md.append("")
    md.append("### karte-eval's recommendation (verbatim)")
    md.append("")
    md.append(recommendation_section(eval_md))
    md.append("")
    md.append("## Charts")
    md.append("")
    for f, title in charts:
        md.append(f"![{title}]({f})")
        md.append("")
    md.append("## What these numbers mean and do not mean")
    md.append("")
    md.append("At smoke scale (tens of steps on a handful of synthetic notes, a few thousand tokens) the run shows that "
              "every step works end to end: the corpus is pseudonymised, each recipe trains and lowers its loss, each "
              "GGUF loads and drafts in Karte, the feedback comes from a real export, and the evaluation applies its "
              "policy to all of them. It does not show which recipe is better for a hospital: the models are too "
              "small and too briefly trained to write clinical text, the evaluation sets are a few items (the smoke "
              "subset), and exposure on 1–10 insertions in a tiny corpus says little about a real corpus. The same "
              "commands with `--full` on a GPU node answer those questions.")
    text = "\n".join(md) + "\n"
    (out / "REPORT.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(_html(text, out), encoding="utf-8")
    return out / "REPORT.md"


def _html(md: str, out: Path) -> str:
    """A minimal Markdown-to-HTML for this report's own shapes (headings, lists, tables, images, bold, code); the
    images are embedded so the page is one file."""
    body = []
    lines = md.splitlines()
    i = 0

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            m = re.match(r"!\[(.*)\]\((.*)\)", line)
            data = base64.b64encode((out / m.group(2)).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(m.group(1))}</figcaption></figure>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.match(r"^\|[-| ]+\|$", lines[i]):
                    rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            i -= 1
            head, *rest = rows
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rest)
                        + "</table>")
        elif re.match(r"^(- |\d+\. )", line):
            items = []
            while i < len(lines) and re.match(r"^(- |\d+\. )", lines[i]):
                items.append(re.sub(r"^(- |\d+\. )", "", lines[i]))
                i += 1
            i -= 1
            body.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in items) + "</ul>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .5em;"
             "font-size:.9em}img{max-width:100%}code{background:#f3f3f3}")
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Karte training run</title>"
            f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>\n")

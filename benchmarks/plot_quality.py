"""Plot every recipe in the experiment log: validation clip ROC AUC against the recall at <= 2 false alarms an
hour on the 120-minute validation mix, with the targets drawn in.

    python benchmarks/plot_quality.py [--log benchmarks/quality.md] [--out benchmarks/quality-recipes.png]

The figures come from the log's own tables (rows ``| eNN |`` of the CPU runs and ``| hNN |`` of the GPU sweep),
so the plot always shows what the log says.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

NUMBER = r"\**(\d\.\d+)\**"
RECALL = re.compile(NUMBER + r" / " + NUMBER)  # "0.30 / 0.28", bold or not


def recipes(log: str) -> list[tuple[str, float, float, float]]:
    """(run, clip AUC, recall at <= 2 FA/h, recall at <= 0.5 FA/h) for every log row that has all three on the
    120-minute validation mix."""
    rows = []
    for line in log.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not re.fullmatch(r"[eh]\d+b?", cells[0]):
            continue
        if cells[0].startswith("e"):  # run | idea | kept? | val clip AUC | val 60 min | val 120 min
            auc_cell, recall_cell = cells[3], cells[5] if len(cells) > 5 else ""
        else:  # run | recipe | params | val clip AUC | val 120 min | delay
            auc_cell, recall_cell = cells[3], cells[4]
        auc, recall = re.fullmatch(NUMBER, auc_cell), RECALL.match(recall_cell)
        if auc and recall:
            rows.append((cells[0], float(auc.group(1)), float(recall.group(1)), float(recall.group(2))))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--log", type=Path, default=Path(__file__).with_name("quality.md"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quality-recipes.png"))
    args = parser.parse_args(argv)
    try:
        rows = recipes(args.log.read_text(encoding="utf-8"))
    except OSError as e:
        print(f"plot_quality: error: {args.log}: cannot read ({e.strerror})", file=sys.stderr)
        return 2
    if not rows:
        print(f"plot_quality: error: {args.log}: no recipe rows with a clip AUC and a recall", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, auc, at2, at05 in rows:
        colour = "tab:orange" if name.startswith("h") else "tab:blue"
        ax.plot([auc, auc], [at05, at2], color=colour, alpha=0.4, lw=1)
        ax.scatter([auc], [at2], color=colour, s=22, zorder=3)
        ax.annotate(name, (auc, at2), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.axhline(0.90, color="tab:green", ls="--", lw=1)
    ax.text(0.861, 0.91, "target: recall 0.90 at <= 2 false alarms/h", color="tab:green", fontsize=8, va="bottom")
    ax.axvline(0.95, color="tab:green", ls=":", lw=1)
    ax.set_xlim(0.86, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("validation clip ROC AUC")
    ax.set_ylabel("recall on the 120-min validation mix\n(dot: <= 2 false alarms/h; line down to <= 0.5/h)")
    ax.set_title(f"{len(rows)} recipes from benchmarks/quality.md (blue: CPU, orange: GPU sweep)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"{args.out}: {len(rows)} recipes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

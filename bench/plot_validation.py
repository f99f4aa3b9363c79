#!/usr/bin/env python3
"""Plot `almc validate --sweep --json FILE`: error against step budget, one panel per problem.

Usage: python3 bench/plot_validation.py SWEEP.json OUT.png

Mixtures: the mode-weight error max_k |fraction_k - w'_k|; the Gaussian problem: KL(out || mu_tau).
The x axis is the step budget. The Monte Carlo error is drawn as a dashed line: the largest
binomial standard error of the weights, or the expected plug-in bias of the KL (values below it
are indistinguishable from 0). Needs matplotlib (pip install matplotlib).
"""
import json
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("plot_validation.py: error: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 1
    try:
        with open(argv[1]) as f:
            data = json.load(f)
        rows = [r for r in data["rows"] if not r.get("skipped")]
    except (OSError, ValueError, KeyError) as e:
        print(f"plot_validation.py: error: cannot read a sweep from {argv[1]}: {e}", file=sys.stderr)
        return 1
    problems = [p["problem"] for p in data.get("problems", [])] or sorted({r["problem"] for r in rows})
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 3.6), squeeze=False)
    for ax, prob in zip(axes[0], problems):
        gauss = prob == "gauss"
        bias = []
        for m in methods:
            pts = sorted((r for r in rows if r["problem"] == prob and r["method"] == m), key=lambda r: r["budget"])
            if not pts:
                continue
            x = [r["budget"] for r in pts]
            if gauss:
                y = [max(r["kl_out_tau"], 1e-3) for r in pts]
                ax.plot(x, y, marker="o", label=m)
                bias += [r["kl_mc_bias"] for r in pts]
            else:
                y = [max(r["weight_err"], 1e-3) for r in pts]
                ax.plot(x, y, marker="o", label=m)
        if gauss and bias:
            ax.axhline(max(bias), color="gray", linestyle="--", linewidth=1, label="KL MC bias")
        if not gauss:
            se = [r["weight_se"] for r in rows if r["problem"] == prob]
            if se and max(se) > 1e-3:
                ax.axhline(max(se), color="gray", linestyle="--", linewidth=1, label="1 binomial se")
        ax.set_xscale("log")
        ax.set_yscale("log")
        budgets = sorted({r["budget"] for r in rows if r["problem"] == prob})
        ax.set_xticks(budgets)
        ax.set_xticklabels([f"{b // 1000}k" for b in budgets])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("step budget")
        ax.set_ylabel("KL(out || mu_tau)" if gauss else "mode-weight error")
        ax.set_title(prob)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"almc validate --sweep: {data.get('chains')} chains, {data.get('device', data.get('backend'))}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)
    print(f"wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""How far the T = 10,000 LSTMs hold without training: a table and a figure (docs/palindrome.md §7).

    python benchmarks/palindrome_t10k_holds.py runs/t10k --out docs/figures/palindrome_t10k_holds.png

Reads `s{seed}_{T}.json` under the folder, each written by
`lstmgan palindrome evaluate --checkpoint CKPT --n N --input-length T` (fresh palindromes; the
test set is never involved in training or selection), and, where present, the peak resident
memory and CPU time from `/usr/bin/time -v` beside it in `s{seed}_{T}.time`.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from lstmgan.plots import pyplot


def read_scores(folder: Path) -> dict[int, dict[int, dict]]:
    """{seed: {T: the evaluate JSON, plus "peak_mib" and "cpu_s" when a .time file is beside it}}."""
    scores: dict[int, dict[int, dict]] = defaultdict(dict)
    for path in sorted(folder.glob("s*_*.json")):
        match = re.fullmatch(r"s(\d+)_(\d+)", path.stem)
        if not match:
            continue
        result = json.loads(path.read_text())
        timing = path.with_suffix(".time")
        if timing.is_file():
            text = timing.read_text()
            peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
            user, system = (re.search(rf"{kind} time \(seconds\): ([\d.]+)", text) for kind in ("User", "System"))
            if peak:
                result["peak_mib"] = int(peak.group(1)) / 1024
            if user and system:
                result["cpu_s"] = float(user.group(1)) + float(system.group(1))
        scores[int(match.group(1))][int(match.group(2))] = result
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    scores = read_scores(args.folder)
    lengths = sorted({T for by_T in scores.values() for T in by_T})
    print("| T | " + " | ".join(f"seed {s}" for s in sorted(scores)) + " |")
    print("|---|" + "---|" * len(scores))
    for T in lengths:
        cells = []
        for seed in sorted(scores):
            r = scores[seed].get(T)
            cells.append("—" if r is None else f"{100 * r['accuracy']:.2f}% (n = {r['n']}"
                         + (f", {r['peak_mib']:.0f} MiB, {r['cpu_s']:.0f} CPU s" if "peak_mib" in r else "") + ")")
        print(f"| {T:,} | " + " | ".join(cells) + " |")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for seed in sorted(scores):
        Ts = sorted(scores[seed])
        ax.plot(Ts, [100 * scores[seed][T]["accuracy"] for T in Ts], marker="o", label=f"seed {seed}")
    ax.axvline(10_000, color="grey", ls=":", lw=1)
    ax.text(10_000, 30, " trained at T = 10,000", color="grey", fontsize=8)
    ax.axhline(10, color="grey", lw=0.8, ls="--")
    ax.text(lengths[-1], 12, "chance", color="grey", fontsize=8, ha="right")
    ax.set(xscale="log", xlabel="T (digits read)", ylabel="accuracy on fresh palindromes (%)", ylim=(0, 102),
           title="LSTMs trained to T = 10,000, scored without training beyond")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()

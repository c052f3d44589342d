"""One figure of FID (and the class-balance KL) against epoch for several GAN runs.

    python benchmarks/gan_fid_curves.py runs/mnist-gan runs/mnist-gan-lrdecay50 --labels "seed" "decay" \\
        --out docs/figures/gan_fid.png

Reads the evaluation rows of each run's metrics.csv (written with --eval-interval).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lstmgan.plots import line_plot


def evaluations(run: Path) -> tuple[list[int], list[float], list[float]]:
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["fid"]]
    return ([int(r["epoch"]) for r in rows], [float(r["fid"]) for r in rows],
            [float(r["class_kl_to_uniform"]) for r in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--floor", type=float, default=None, help="draw the real-data FID floor")
    parser.add_argument("--floor-label", default="real-data floor (n=10000)")
    parser.add_argument("--no-target", action="store_true", help="leave out the 10x-floor line")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    labels = args.labels or [run.name for run in args.runs]
    fid, kl = {}, {}
    for label, run in zip(labels, args.runs):
        epochs, fids, kls = evaluations(run)
        fid[label], kl[label] = (epochs, fids), (epochs, kls)
    if args.floor:
        span = [min(e for e, _ in fid.values())[0], max(e for e, _ in fid.values())[-1]]
        fid[args.floor_label] = (span, [args.floor, args.floor])
        if not args.no_target:
            fid["target: 10x floor"] = (span, [10 * args.floor, 10 * args.floor])
    line_plot(args.out, [
        {"series": fid, "xlabel": "epoch", "ylabel": "FID (classifier features, 5000 samples)", "logy": True,
         "title": "FID"},
        {"series": kl, "xlabel": "epoch", "ylabel": "KL(digit histogram || uniform)", "title": "class balance",
         "logy": True},
    ], width=6)


if __name__ == "__main__":
    main()

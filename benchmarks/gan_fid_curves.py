"""One figure of FID (and the class-balance KL) against epoch, or training minutes, for several GAN runs.

    python benchmarks/gan_fid_curves.py runs/mnist-gan runs/mnist-gan-lrdecay50 --labels "seed" "decay" \\
        --out docs/figures/gan_fid.png

Reads the evaluation rows of each run's metrics.csv (written with --eval-interval). With
`--minutes` the x axis is minutes of training: each evaluation's iteration times the run's
median seconds per iteration, read from the times its progress grids (`samples/iter_*.png`,
every --save-interval iterations) were written, so a pause or a slow evaluation between two
grids does not count, and every run is timed as it really ran. `--ms-per-iteration` replaces
those timings with one measured speed per run (e.g. from benchmarks/gan_arch_speed.py on an
idle machine), for runs that shared the cores with others under different conditions.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from lstmgan.plots import line_plot


def evaluations(run: Path, seconds: float | None = None) -> tuple[list[float], list[float], list[float]]:
    """(x, FID, class KL) of each evaluation; x is the epoch, or minutes at `seconds` per iteration."""
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r["fid"]]
    x = ([int(r["iteration"]) * seconds / 60 for r in rows] if seconds
         else [int(r["epoch"]) for r in rows])
    return x, [float(r["fid"]) for r in rows], [float(r["class_kl_to_uniform"]) for r in rows]


def seconds_per_iteration(run: Path) -> float:
    """The median, over consecutive progress grids, of wall seconds per iteration between them."""
    grids = sorted((int(path.stem.split("_")[1]), path.stat().st_mtime)
                   for path in (run / "samples").glob("iter_*.png"))
    rates = [(t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in zip(grids, grids[1:])]
    if not rates:
        raise SystemExit(f"{run}: fewer than two progress grids in samples/, cannot time it")
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--floor", type=float, default=None, help="draw the real-data FID floor")
    parser.add_argument("--floor-label", default="real-data floor (n=10000)")
    parser.add_argument("--no-target", action="store_true", help="leave out the 10x-floor line")
    parser.add_argument("--minutes", action="store_true", help="x axis: minutes of training, not epochs")
    parser.add_argument("--ms-per-iteration", nargs="+", type=float,
                        help="with --minutes: one speed per run instead of its progress grids' timing")
    parser.add_argument("--xlabel", help="the x axis' label (default: how the minutes were timed)")
    parser.add_argument("--title", default="FID")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    labels = args.labels or [run.name for run in args.runs]
    speeds = args.ms_per_iteration or [None] * len(args.runs)
    if len(labels) != len(args.runs) or len(speeds) != len(args.runs):
        parser.error("give one --labels and one --ms-per-iteration value per run")
    fid, kl = {}, {}
    for label, run, ms in zip(labels, args.runs, speeds):
        seconds = (ms / 1e3 if ms else seconds_per_iteration(run)) if args.minutes else None
        epochs, fids, kls = evaluations(run, seconds)
        if args.minutes:
            print(f"{label}: {seconds * 1e3:.0f} ms per iteration")
        fid[label], kl[label] = (epochs, fids), (epochs, kls)
    if args.floor:
        span = [min(e for e, _ in fid.values())[0], max(e for e, _ in fid.values())[-1]]
        fid[args.floor_label] = (span, [args.floor, args.floor])
        if not args.no_target:
            fid["target: 10x floor"] = (span, [10 * args.floor, 10 * args.floor])
    timed = "at the given speeds" if args.ms_per_iteration else "1 thread, two runs side by side on 2 cores"
    xlabel = args.xlabel or (f"minutes of training ({timed})" if args.minutes else "epoch")
    line_plot(args.out, [
        {"series": fid, "xlabel": xlabel, "ylabel": "FID (classifier features, 5000 samples)", "logy": True,
         "title": args.title},
        {"series": kl, "xlabel": xlabel, "ylabel": "KL(digit histogram || uniform)", "title": "class balance",
         "logy": True},
    ], width=6)


if __name__ == "__main__":
    main()

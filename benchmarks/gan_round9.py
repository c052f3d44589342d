"""Round 9 of Part II's screens (docs/log/gan-screens.md §9): the D options, each run and judged by the rule
written before its run. This script only carries the rule out, so that a screen interrupted with its session
is started again by one command, and a verdict is read from the logged files, not retyped.

    python benchmarks/gan_round9.py run b-diffaug       # train (resuming a started run), score, log
    python benchmarks/gan_round9.py verdict b           # every logged screen of recipe B against its baseline
    python benchmarks/gan_round9.py run b-combo         # the options that pass, together (§9: once per recipe)

A run trains in runs/<name>/ with the recipe's command (§9) and the option's flags, one thread unless
--threads says otherwise. Its best.pt is scored on the validation split at sampling seeds 0 and 1
(`lstmgan gan evaluate --against val`, with the cluster check for recipe B), and its config.json,
summary.json, metrics.csv, val_reference.json and the two scores are copied to docs/log/gan-round9/<name>/.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG, RUNS = ROOT / "docs" / "log" / "gan-round9", Path("runs")
SCREEN = ["--arch", "conv", "--g-width", "128", "--g-maps-28", "64", "--d-projection", "--g-conditional-bn",
          "--n-epochs", "20", "--lr-decay-from", "10", "--ema-decay", "0.999", "--eval-interval", "4",
          "--snapshot-interval", "0"]
RECIPES = {"a": ["--conditional"], "b": ["--clusters", "50"]}     # A: the digit labels; B: 50 pixel clusters
OPTIONS = {"base": [], "sn-hinge": ["--spectral-norm", "--loss", "hinge", "--b1", "0", "--b2", "0.9"],
           "r1-0.01": ["--r1-gamma", "0.01", "--r1-every", "16"], "r1-0.1": ["--r1-gamma", "0.1", "--r1-every", "16"],
           "r1-1": ["--r1-gamma", "1", "--r1-every", "16"], "diffaug": ["--diff-augment"],
           "ttur": ["--lr-d", "0.0004"]}
COMBINATION = {"a": "sn-hinge-r1", "b": "combo"}    # recipe A's combination ran under its own name (§9.7)
SEEDS = (0, 1)


def scores(name: str) -> list[dict]:
    """A logged screen's validation scores at sampling seeds 0 and 1."""
    return [json.loads((LOG / name / f"best_val_seed{seed}.json").read_text()) for seed in SEEDS]


def mean_fid(name: str) -> float:
    return sum(s["fid"] for s in scores(name)) / len(SEEDS)


def spread(name: str) -> float:
    fids = [s["fid"] for s in scores(name)]
    return max(fids) - min(fids)


def band(name: str, against: str) -> float:
    """§9's noise band: the larger of 3 x the floor's sd over real draws and the sampling-seed spread of either run
    or of the recipe's baseline (a combination is judged against its best single option by "the same band")."""
    base = f"{name.split('-')[0]}-base"
    floor_sd = json.loads((LOG / base / "val_reference.json").read_text())["fid_floor_sd"]
    return max(3 * floor_sd, spread(name), spread(against), spread(base))


def judged(name: str, against: str) -> str:
    """'passes' (mean FID below `against`'s by more than the band), 'fails' (above by more), else 'tie'."""
    gap = mean_fid(against) - mean_fid(name)
    return "passes" if gap > band(name, against) else "fails" if -gap > band(name, against) else "tie"


def single_options(recipe: str) -> list[str]:
    """The recipe's logged one-option screens, in OPTIONS' order."""
    return [option for option in OPTIONS if option != "base" and (LOG / f"{recipe}-{option}").is_dir()]


def combination(recipe: str) -> list[str]:
    """The options that pass against the baseline, R1 at its best passing γ only: run together once if more than
    one passes (§9), else nothing."""
    passing = [o for o in single_options(recipe) if judged(f"{recipe}-{o}", f"{recipe}-base") == "passes"]
    r1 = sorted((o for o in passing if o.startswith("r1-")), key=lambda o: mean_fid(f"{recipe}-{o}"))[:1]
    chosen = [o for o in passing if not o.startswith("r1-")] + r1
    return chosen if len(chosen) > 1 else []


def d_balance(name: str, epochs: tuple[int, ...]) -> tuple[float, float]:
    """Mean D(real) and D(fake) over the logged iterations of the given epochs (the two-time-scale condition)."""
    rows = [r for r in csv.DictReader(open(LOG / name / "metrics.csv")) if int(r["epoch"]) in epochs and r["d_real"]]
    return (sum(float(r["d_real"]) for r in rows) / len(rows), sum(float(r["d_fake"]) for r in rows) / len(rows))


def verdict(recipe: str) -> None:
    base = f"{recipe}-base"
    print(f"recipe {recipe.upper()}: baseline mean validation FID {mean_fid(base):.2f}")
    for option in single_options(recipe):
        name = f"{recipe}-{option}"
        print(f"  {option:10s} mean {mean_fid(name):6.2f}  band {band(name, base):.2f}  {judged(name, base)}")
    chosen, combined = combination(recipe), f"{recipe}-{COMBINATION[recipe]}"
    print(f"  combination: {' + '.join(chosen) or 'none (fewer than two options pass)'}")
    if chosen and (LOG / combined).is_dir():
        best = min(chosen, key=lambda o: mean_fid(f"{recipe}-{o}"))
        print(f"  {combined}: mean {mean_fid(combined):.2f} against {best}'s {mean_fid(f'{recipe}-{best}'):.2f}, "
              f"band {band(combined, f'{recipe}-{best}'):.2f}: {judged(combined, f'{recipe}-{best}')}")
    last = max(int(r["epoch"]) for r in csv.DictReader(open(LOG / base / "metrics.csv")))
    for name in [base] + [f"{recipe}-{o}" for o in single_options(recipe)]:
        real, fake = d_balance(name, (last - 1, last))
        print(f"  D over epochs {last - 1}-{last}, {name}: {real:.2f} / {fake:.2f}"
              + ("  (D pulls ahead: >= 0.7 / <= 0.3)" if real >= 0.7 and fake <= 0.3 else ""))


def refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def flags(name: str) -> list[str]:
    recipe, option = name.split("-", 1)
    if option == COMBINATION[recipe]:
        chosen = combination(recipe)
        if not chosen:
            refuse(f"{name}: fewer than two options of recipe {recipe.upper()} pass, so nothing to combine")
        return RECIPES[recipe] + [flag for o in chosen for flag in OPTIONS[o]]
    return RECIPES[recipe] + OPTIONS[option]


def run(name: str, data_dir: str, threads: int) -> None:
    out = RUNS / name
    lstmgan = [sys.executable, "-m", "lstmgan", "gan"]
    if not (out / "summary.json").is_file():
        resume = ["--resume"] if (out / "checkpoints" / "last.pt").is_file() else []
        subprocess.run(lstmgan + ["train"] + SCREEN + flags(name) + ["--data-dir", data_dir, "--threads", str(threads),
                       "--out", str(out)] + resume, check=True)
    kept = LOG / name
    kept.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        scored = RUNS / f"{name}_val_seed{seed}.json"
        if not scored.is_file() or not scored.stat().st_size:
            cluster_check = ["--cluster-check"] if name.startswith("b-") else []
            result = subprocess.run(lstmgan + ["evaluate", "--checkpoint", str(out / "checkpoints" / "best.pt"),
                                               "--against", "val", "--seed", str(seed), "--data-dir", data_dir]
                                    + cluster_check, check=True, capture_output=True, text=True)
            scored.write_text(result.stdout)
        shutil.copy2(scored, kept / f"best_val_seed{seed}.json")
    for file in ("config.json", "summary.json", "metrics.csv", "val_reference.json"):
        shutil.copy2(out / file, kept / file)
    print(f"{name}: validation FID " + " / ".join(f"{s['fid']:.2f}" for s in scores(name)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["run", "verdict"])
    parser.add_argument("name", help="run: <recipe>-<option> (a-base, b-r1-0.1, b-combo, ...); verdict: a or b")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    recipe, _, option = args.name.partition("-")
    if recipe not in RECIPES or (args.stage == "run" and option not in [*OPTIONS, COMBINATION[recipe]]):
        refuse(f"unknown {'screen' if args.stage == 'run' else 'recipe'} {args.name!r}")
    verdict(recipe) if args.stage == "verdict" else run(args.name, args.data_dir, args.threads)

"""Round 9 of Part II's screens (docs/log/gan-screens.md §9): the D options, each run and judged by the rule
written before its run. This script only carries the rule out, so that a screen interrupted with its session
is started again by one command, and a verdict is read from the logged files, not retyped.

    python benchmarks/gan_round9.py run b-diffaug       # train (resuming a started run), score, log
    python benchmarks/gan_round9.py verdict b           # every logged screen of recipe B against its baseline
    python benchmarks/gan_round9.py run b-combo         # the passing options together (§9: once per recipe)
    python benchmarks/gan_round9.py ship b --threads 2   # the decided recipe, 40 epochs, against today's generator
    python benchmarks/gan_round9.py publish b           # if it ships: export, pretrained.json, the test set once

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
import time
from pathlib import Path

from lstmgan.shipped import record_shipped

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
SHIP = ["--n-epochs", "40", "--lr-decay-from", "20"]             # §9, shipping: 40 epochs, decay from the halfway
INCUMBENT = {"a": ("pretrained:mnist-conv-cgan", "shipped_conv_cgan"), "b": ("pretrained:mnist", "shipped_mnist")}
SHIPPED = {"a": ("mnist-conv-cgan", "mnist_conv_cgan.safetensors"), "b": ("mnist-conv", "mnist_conv.safetensors")}
WEIGHTS = ROOT / "src" / "lstmgan" / "weights"                   # where shipped generators are added
LSTMGAN = [sys.executable, "-m", "lstmgan", "gan"]
MAX_WALL_S = 2 * 3600                                             # issue 35 §3: 2 hours on 2 cores, or no CPU ship
SEEDS = (0, 1)


def scores(name: str) -> list[dict]:
    """A logged screen's validation scores at sampling seeds 0 and 1."""
    return [json.loads((LOG / name / f"best_val_seed{seed}.json").read_text()) for seed in SEEDS]


def mean_fid(name: str) -> float:
    return sum(s["fid"] for s in scores(name)) / len(SEEDS)


def noise_band(floor_sd: float, *fids: list[float]) -> float:
    """§9's noise band: the larger of 3 x the floor's sd over real draws and the sampling-seed spread of any of the
    generators compared (each given by its FIDs at the sampling seeds)."""
    return max(3 * floor_sd, *(max(seeds) - min(seeds) for seeds in fids))


def band(name: str, against: str) -> float:
    """The band between two logged screens: the recipe's baseline's spread counts too (a combination is judged
    against its best single option by "the same band")."""
    base = f"{name.split('-')[0]}-base"
    floor_sd = json.loads((LOG / base / "val_reference.json").read_text())["fid_floor_sd"]
    return noise_band(floor_sd, *([s["fid"] for s in scores(run)] for run in (name, against, base)))


def judged(name: str, against: str) -> str:
    """'passes' (mean FID below `against`'s by more than the band), 'fails' (above by more), else 'tie'."""
    gap = mean_fid(against) - mean_fid(name)
    return "passes" if gap > band(name, against) else "fails" if -gap > band(name, against) else "tie"


def single_options(recipe: str) -> list[str]:
    """The recipe's logged one-option screens, in OPTIONS' order."""
    return [option for option in OPTIONS if option != "base" and (LOG / f"{recipe}-{option}").is_dir()]


def passing(recipe: str) -> list[str]:
    """The recipe's single options that pass against its baseline."""
    return [o for o in single_options(recipe) if judged(f"{recipe}-{o}", f"{recipe}-base") == "passes"]


def combination(recipe: str) -> list[str]:
    """The options that pass against the baseline, R1 at its best passing γ only: run together once if more than
    one passes (§9), else nothing."""
    r1 = sorted((o for o in passing(recipe) if o.startswith("r1-")), key=lambda o: mean_fid(f"{recipe}-{o}"))[:1]
    chosen = [o for o in passing(recipe) if not o.startswith("r1-")] + r1
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


def decided(recipe: str) -> list[str]:
    """The recipe's options as §9 decides them: the combination if it beat its best single option by the band,
    else the passing single option of lowest mean FID (no option if none passed)."""
    best = min(passing(recipe), key=lambda o: mean_fid(f"{recipe}-{o}"), default=None)
    chosen, combined = combination(recipe), f"{recipe}-{COMBINATION[recipe]}"
    if chosen and not (LOG / combined / "best_val_seed1.json").is_file():
        refuse(f"recipe {recipe.upper()}'s combination ({' + '.join(chosen)}) has not been screened yet")
    if chosen and judged(combined, f"{recipe}-{best}") == "passes":
        return chosen
    return [best] if best else []


def flags(name: str) -> list[str]:
    recipe, option = name.split("-", 1)
    if option == "ship":
        return RECIPES[recipe] + [flag for o in decided(recipe) for flag in OPTIONS[o]] + SHIP
    if option == COMBINATION[recipe]:
        chosen = combination(recipe)
        if not chosen:
            refuse(f"{name}: fewer than two options of recipe {recipe.upper()} pass, so nothing to combine")
        return RECIPES[recipe] + [flag for o in chosen for flag in OPTIONS[o]]
    return RECIPES[recipe] + OPTIONS[option]


def evaluate(checkpoint: str, recipe: str, data_dir: str, *args: str) -> str:
    """`lstmgan gan evaluate` of a checkpoint (with the cluster check for recipe B): its JSON output."""
    cluster_check = ["--cluster-check"] if recipe == "b" else []
    return subprocess.run(LSTMGAN + ["evaluate", "--checkpoint", checkpoint, *args, "--data-dir", data_dir]
                          + cluster_check, check=True, capture_output=True, text=True).stdout


def run(name: str, data_dir: str, threads: int) -> None:
    out, kept = RUNS / name, LOG / name
    if not (out / "summary.json").is_file():
        resume = ["--resume"] if (out / "checkpoints" / "last.pt").is_file() else []
        started = time.time()
        subprocess.run(LSTMGAN + ["train"] + SCREEN + flags(name) + ["--data-dir", data_dir, "--threads", str(threads),
                       "--out", str(out)] + resume, check=True)   # later flags win: a ship run's 40 epochs
        wall = time.time() - started
        print(f"{name}: trained in {wall:.0f} s (wall clock{', resumed' if resume else ''})", flush=True)
        kept.mkdir(parents=True, exist_ok=True)    # the time the shipping rule reads (2 hours at most)
        (kept / "trained.json").write_text(json.dumps({"wall_s": round(wall, 1), "threads": threads,
                                                       "resumed": bool(resume)}) + "\n")
    kept.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        scored = RUNS / f"{name}_val_seed{seed}.json"
        if not scored.is_file() or not scored.stat().st_size:
            scored.write_text(evaluate(str(out / "checkpoints" / "best.pt"), name.split("-")[0], data_dir,
                                       "--against", "val", "--seed", str(seed)))
        shutil.copy2(scored, kept / f"best_val_seed{seed}.json")
    for file in ("config.json", "summary.json", "metrics.csv", "val_reference.json"):
        shutil.copy2(out / file, kept / file)
    print(f"{name}: validation FID " + " / ".join(f"{s['fid']:.2f}" for s in scores(name)), flush=True)


def ship(recipe: str, data_dir: str, threads: int) -> None:
    """§9, shipping: the decided recipe over 40 epochs, then today's generator scored on the new run's split at the
    same sampling seeds (`--split-of`). Prints the rule's verdict; the wall time decides too (2 hours at most)."""
    name, (incumbent, label) = f"{recipe}-ship", INCUMBENT[recipe]
    run(name, data_dir, threads)
    best = RUNS / name / "checkpoints" / "best.pt"
    for seed in SEEDS:
        kept = LOG / name / f"{label}_val_seed{seed}.json"
        if not kept.is_file():
            kept.write_text(evaluate(incumbent, recipe, data_dir, "--against", "val", "--split-of", str(best),
                                     "--seed", str(seed)))
    verdict = shipping_verdict(recipe)
    (LOG / name / "verdict.json").write_text(json.dumps(verdict, indent=2) + "\n")
    wall = verdict["wall_s"]
    print(f"{name}: mean validation FID {verdict['fid_mean']:.2f} against {incumbent}'s "
          f"{verdict['incumbent_fid_mean']:.2f} on the same split, band {verdict['band']:.2f}; trained in "
          + (f"{wall:.0f} s" if wall is not None else "an unknown time (resumed, or no trained.json)") + ": "
          + (f"ships as pretrained:{SHIPPED[recipe][0]} (publish {recipe})" if verdict["ships"]
             else f"{incumbent} stays"), flush=True)


def shipping_verdict(recipe: str) -> dict:
    """§9.9 / §9.16's rule, from the logged shipping run: it ships only if its mean validation FID is below today's
    generator's (scored on the same split, same sampling seeds) by more than the band, and it trained in one go
    within MAX_WALL_S."""
    name, (incumbent, label) = f"{recipe}-ship", INCUMBENT[recipe]
    theirs = [json.loads((LOG / name / f"{label}_val_seed{seed}.json").read_text())["fid"] for seed in SEEDS]
    ours = [s["fid"] for s in scores(name)]
    width = noise_band(json.loads((LOG / name / "val_reference.json").read_text())["fid_floor_sd"], ours, theirs)
    ours_mean, theirs_mean = sum(ours) / len(SEEDS), sum(theirs) / len(SEEDS)
    trained = LOG / name / "trained.json"
    timing = json.loads(trained.read_text()) if trained.is_file() else {"wall_s": None, "resumed": True}
    wall = None if timing["resumed"] else timing["wall_s"]       # a resumed run's whole time is not known
    ships = theirs_mean - ours_mean > width and wall is not None and wall <= MAX_WALL_S
    return {"fid_mean": ours_mean, "incumbent": incumbent, "incumbent_fid_mean": theirs_mean,
            "band": width, "wall_s": wall, "ships": ships}


def publish(recipe: str, data_dir: str) -> None:
    """The last step of §9.16, once `ship` has said the run ships: its best.pt exported as pretrained:<name> (fp16
    safetensors, its validation scores inside), its entry in pretrained.json, and the test set scored once, at
    sampling seed 0, after the choice (metrics.json). Refused (exit 2) before a shipping verdict that says so."""
    name, (shipped, file) = f"{recipe}-ship", SHIPPED[recipe]
    verdict = LOG / name / "verdict.json"
    if not verdict.is_file() or not json.loads(verdict.read_text())["ships"]:
        refuse(f"recipe {recipe.upper()} has no shipping verdict that ships (run `ship {recipe}` first)")
    if shipped in json.loads((WEIGHTS / "pretrained.json").read_text()):
        refuse(f"pretrained:{shipped} is already shipped; remove its entry and file to publish it again")
    config = json.loads((RUNS / name / "config.json").read_text())
    validation = scores(name)
    kept = LOG / name / "validation_scores.json"
    kept.write_text(json.dumps({"validation_fid": [s["fid"] for s in validation], "seeds": list(SEEDS)}) + "\n")
    subprocess.run(LSTMGAN + ["export", "--checkpoint", str(RUNS / name / "checkpoints" / "best.pt"),
                              "--out", str(WEIGHTS / file), "--metrics", str(kept)], check=True)
    record_shipped(shipped, {"file": file, "kind": "gan", "description": describe(config, validation[0])},
                   folder=WEIGHTS)
    once = ["--n", "10000", "--seed", "0"]                      # the test set, once, after the choice
    output = evaluate(f"pretrained:{shipped}", recipe, data_dir, *once)
    (LOG / name / "test_seed0.json").write_text(output)
    tested = json.loads(output)
    record_shipped(shipped, metrics=tested | {
        "validation": {k: validation[0][k] for k in ("fid", "fid_floor", "fid_floor_sd", "fid_ratio")},
        "validation_fid_seed_1": validation[1]["fid"], "command": " ".join(
            ["lstmgan gan evaluate --checkpoint", f"pretrained:{shipped}", *once]
            + (["--cluster-check"] if recipe == "b" else []))}, folder=WEIGHTS)
    print(f"pretrained:{shipped}: test FID {tested['fid']:.2f} (floor {tested['fid_floor']:.2f}, ratio "
          f"{tested['fid_ratio']:.2f}), recall {tested['recall']:.3f}, copy rate {100 * tested['copy_rate']:.2f}% "
          f"(the test set's own {100 * tested['copy_rate_test']:.2f}%)", flush=True)


def describe(config: dict, validation: dict) -> str:
    """pretrained.json's description of a shipped round-9 generator, from its run's config."""
    conditions = f"{config['clusters']} k-means clusters of the training pixels, no digit labels read" \
        if config["clusters"] else "digit labels"
    d_options = ("spectral norm on every D layer, " if config["spectral_norm"] else "") + f"the {config['loss']} loss" \
        + (f", R1 γ = {config['r1_gamma']:g} every {config['r1_every']} D steps" if config["r1_gamma"] else "")
    return (f"convolutional GAN conditioned on {conditions} (--arch conv --g-width {config['g_width']} --g-maps-28 "
            f"{config['g_maps_28']}; {d_options}, Adam betas ({config['b1']:g}, {config['b2']:g}); projection D, "
            f"conditional batch norm in G, EMA "
            f"{config['ema_decay']:g}, {config['n_epochs']} epochs, lr decay from {config['lr_decay_from']}), trained "
            f"on a stratified random {config['train_size']:,} of the training images (validation split seed "
            f"{config['val_seed']}); the epoch ({validation['epochs_completed']}) with the lowest FID on its "
            f"{config['val_size']:,} held-out training images, never a test-set score; see docs/gan.md")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["run", "verdict", "ship", "publish"])
    parser.add_argument("name", help="run: <recipe>-<option> (a-base, b-r1-0.1, b-combo, ...); verdict, ship, "
                                     "publish: a or b")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    recipe, _, option = args.name.partition("-")
    if recipe not in RECIPES or (args.stage == "run" and option not in [*OPTIONS, COMBINATION[recipe]]):
        refuse(f"unknown {'screen' if args.stage == 'run' else 'recipe'} {args.name!r}")
    if args.stage == "verdict":
        verdict(recipe)
    elif args.stage == "ship":
        ship(recipe, args.data_dir, args.threads)
    elif args.stage == "publish":
        publish(recipe, args.data_dir)
    else:
        run(args.name, args.data_dir, args.threads)

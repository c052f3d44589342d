"""Round 4 of the model study (docs/palindrome.md §5.8): the fair round, stage by stage.

Its rules were written before its first run; this script only carries them out. Each stage is a set
of ordinary sweeps under `runs/round4/`, run with `sweep --resume`, so the study can stop at any time
and continue later: a finished run is never trained again. After each run its config.json,
summary.json and metrics.csv are copied to `docs/log/round4/<stage>/<run>/` (no checkpoints), and
`docs/log/round4/<stage>.md` is rewritten from everything finished so far.

    python benchmarks/palindrome_round4.py select            # stage 1 (memory setting), then stage 2 (rate)
    python benchmarks/palindrome_round4.py select --table    # only rewrite the table from finished runs
    python benchmarks/palindrome_round4.py round --plan      # the round's cells and their CPU cost, runs nothing
    python benchmarks/palindrome_round4.py round             # every model at its chosen setting and rate
    python benchmarks/palindrome_round4.py round --table     # the round's table (scores the runs on fresh data)
    python benchmarks/palindrome_round4.py generalise        # the T = 200 runs scored, untrained, at longer T
    python benchmarks/palindrome_round4.py ship              # each model's seed 0 at T = 200 and its longest T
    python benchmarks/palindrome_round4.py ship --model lru  # only the LRU (its longest T is final)
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import re
import shutil
from pathlib import Path

import torch

from lstmgan.recurrent.config import PalindromeConfig
from lstmgan.recurrent.registry import REGISTRY
from lstmgan.recurrent.sweep import sweep
from lstmgan.stats import clopper_pearson

ROOT = Path(__file__).resolve().parent.parent
RUNS, LOG = Path("runs/round4"), ROOT / "docs" / "log" / "round4"
TARGET = 0.99
SELECT_T, STUDY_RATE, OTHER_RATES = 200, 0.001, (0.0003, 0.003)
ROUND_T, ROUND_SEEDS, BOUNDARY_SEEDS = (100, 200, 500, 1000), (0, 1, 2), (3, 4)
MAX_CPU_HOURS = 2.0          # a cell whose seed would take longer keeps its round 3 figure (§5.8)
FRESH_SEED, FRESH_N = 987654321, 2000      # the test: palindromes no run trains on
GENERALISE_T = (200, 400, 1000, 2000, 10000)    # issue 36 §4: the training length, then 2x to 50x
GENERALISE_N = {10000: 200}                     # fresh palindromes per length (1,000 unless named: cost)
CURRICULUM_LSTM = "pretrained:palindrome-T200"  # section 4's LSTM, a separate and labelled line
SIZES = {"rnn": 200, "lstm": 128, "gru": 128, "transformer": 64, "lru": 64}
# the short list of memory settings, in the order that breaks ties (docs/palindrome.md §5.8)
SETTINGS = {
    "rnn": {"plain": {}},
    "lstm": {"fb3": {"forget_bias": 3.0}, "chrono": {"forget_bias": "chrono"}},
    "gru": {"fb3": {"forget_bias": 3.0}, "chrono": {"forget_bias": "chrono"}},
    "transformer": {"causal-sin": {"attention": "causal", "position": "sinusoidal"},
                    "causal-random": {"attention": "causal", "position": "random", "position_range": 16384}},
    "lru": {"ring": {}, "long": {"lru_r_min": 0.99, "lru_r_max": 0.9999, "lru_max_phase": math.pi / 10,
                                 "lru_state": 128, "lru_lr_factor": 0.5}},
}
BUDGET = {"input_dim": 10, "batch_size": 100, "data": "fresh", "data_size": 20000, "max_epoch": 20, "patience": 1,
          "target_accuracy": 0.999, "max_norm": 10.0, "device": "cpu"}
STEPS_PER_EPOCH = math.ceil(BUDGET["data_size"] * 0.8 / BUDGET["batch_size"])   # 160: the training part, batch 100


def cell_config(model: str, setting: str, rate: float, max_epoch: int | None = None) -> tuple[str, dict]:
    """A cell's sweep name and its settings fixed for every run (the budget, the model's setting and rate)."""
    name = f"{model}-{setting}-lr{rate:g}" + (f"-cap{max_epoch}" if max_epoch else "")
    fixed = BUDGET | SETTINGS[model][setting] | {"num_hidden": SIZES[model], "learning_rate": rate}
    return name, fixed | ({"max_epoch": max_epoch} if max_epoch else {})


def run_cell(stage: str, model: str, setting: str, rate: float, lengths=(SELECT_T,), seeds=(0,),
             max_epoch: int | None = None) -> None:
    """A model at one setting and rate, at the given lengths and seeds: only the runs not yet logged in
    docs/log/round4/ train (run folders do not survive between sessions; the log does), each run as its own
    sweep, resumed if it was started and logged (with its fresh-palindrome accuracy) as soon as it finishes.
    `max_epoch`: a cell over the CPU budget, capped (its runs are named `...-capN-...`)."""
    name, fixed = cell_config(model, setting, rate, max_epoch)
    for T in lengths:
        for seed in seeds:
            kept = LOG / stage / f"{name}-{model}-T{T}-s{seed}"
            if (kept / "fresh.json").is_file():
                continue
            log_run(train_seed(stage, name, fixed, model, T, seed), kept)


def train_seed(stage: str, name: str, fixed: dict, model: str, T: int, seed: int) -> Path:
    """One seed of a cell as its own sweep, runs/round4/<stage>/<name>-T<T>-s<seed> (resumed if it was started);
    returns the run's folder inside it."""
    out = RUNS / stage / f"{name}-T{T}-s{seed}"
    sweep({"model": [model], "input_length": [T], "seed": [seed]}, fixed, out,
          resume=(out / "sweep.json").is_file(), threads=1, progress=False)
    return out / "runs" / f"{model}-T{T}-s{seed}"


def log_run(run: Path, kept: Path) -> None:
    """Copy a finished run's config, summary and curve to the log, with its accuracy on fresh palindromes."""
    from lstmgan.recurrent.evaluate import evaluate_checkpoint

    if not (run / "summary.json").is_file():
        return
    kept.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "summary.json", "metrics.csv"):
        shutil.copy2(run / name, kept / name)
    if not (kept / "fresh.json").is_file():
        result = evaluate_checkpoint(run / "checkpoints" / "last.pt", FRESH_N, FRESH_SEED, "cpu")
        (kept / "fresh.json").write_text(json.dumps({"n": FRESH_N, "seed": FRESH_SEED,
                                                     "accuracy": result["accuracy"]}) + "\n")


def backfill_fresh(stage: str) -> None:
    """Fresh-palindrome accuracy for logged runs that lack it, from their checkpoints where this machine still
    has them (runs logged before log_run scored them)."""
    for kept in sorted(path.parent for path in (LOG / stage).glob("*/summary.json")):
        if (kept / "fresh.json").is_file():
            continue
        model = json.loads((kept / "config.json").read_text())["model"]
        name = kept.name.partition(f"-{model}-T")[0]
        for found in sorted(RUNS.glob(f"{stage}/{name}*/runs/{kept.name[len(name) + 1:]}")):
            log_run(found, kept)


def paused_seconds(kept: Path) -> float:
    """A pause recorded beside a logged run in paused.json (a run stopped with SIGSTOP while another job was
    timed on the idle machine keeps counting wall time), else 0."""
    paused = kept / "paused.json"
    return json.loads(paused.read_text())["paused_s"] if paused.is_file() else 0.0


def finished(stage: str) -> list[dict]:
    """Every logged run of a stage: its setting, rate, best held-out accuracy and steps to 99%."""
    rows = []
    for run in sorted((LOG / stage).glob("*/summary.json")):
        config = json.loads((run.parent / "config.json").read_text())
        summary = json.loads(run.read_text())
        curve = list(csv.DictReader(open(run.parent / "metrics.csv")))
        per_epoch = math.ceil(config["train_size"] / config["batch_size"])
        first = next((int(r["epoch"]) for r in curve if float(r["test_accuracy"]) >= TARGET), None)
        setting = run.parent.name.split("-lr")[0].split("-", 1)[1]
        sweep_name, _, run_name = run.parent.name.partition(f"-{config['model']}-T")
        rows.append({"sweep": sweep_name, "run": f"{config['model']}-T{run_name}",
                     "model": config["model"], "setting": setting, "rate": config["learning_rate"],
                     "T": config["input_length"], "seed": config["seed"],
                     "best": summary["best_test_accuracy"], "steps_to_99": first * per_epoch if first else None,
                     "steps": summary["steps"],
                     "seconds_per_step": (summary["wall_time_s"] - paused_seconds(run.parent))
                     / max(1, summary["steps"]),
                     "parameters": summary["parameters"], "gflops_per_step": flops_per_step(config) / 1e9,
                     "max_epoch": config["max_epoch"], "capped": config["max_epoch"] < BUDGET["max_epoch"],
                     "fresh": json.loads((run.parent / "fresh.json").read_text())["accuracy"]
                     if (run.parent / "fresh.json").is_file() else None})
    return rows


def flops_per_step(config: dict) -> float:
    """flops_per_step_of, counted once per distinct config (finished() is called many times by one round)."""
    values = {k: v for k, v in config.items() if k in PalindromeConfig.defaults() and k != "seed"}
    return flops_per_step_of(json.dumps(values, sort_keys=True))


@functools.cache
def flops_per_step_of(config_json: str) -> float:
    """Training FLOPs of one step by the model's registry entry (lstmgan.recurrent.flops: every product,
    attention's QKᵀ and AV, the LRU's scan; elementwise work excluded for every model). Round 4 first counted
    with torch's FlopCounterMode, which saw neither the fused attention nor the scan."""
    values = json.loads(config_json)
    return REGISTRY[values["model"]].flops(PalindromeConfig(**values)).total


def better(a: dict, b: dict) -> dict:
    """The rule of §5.8: higher best held-out accuracy; both at 99%: fewer steps; else the earlier entry (a)."""
    if a["best"] >= TARGET and b["best"] >= TARGET:
        return b if b["steps_to_99"] < a["steps_to_99"] else a
    return b if b["best"] > a["best"] else a


def choose(rows: list[dict], model: str, rate: float | None = None) -> dict | None:
    """The chosen run of a model among the finished ones (at one rate, or over all), None while any is missing."""
    order = list(SETTINGS[model])
    candidates = sorted((r for r in rows if r["model"] == model and (rate is None or r["rate"] == rate)),
                        key=lambda r: (order.index(r["setting"]), r["rate"] != STUDY_RATE, r["rate"]))
    chosen = None
    for row in candidates:
        chosen = row if chosen is None else better(chosen, row)
    return chosen


def write_table(stage: str) -> None:
    backfill_fresh(stage)
    rows = finished(stage)
    lines = [f"# Round 4, stage `{stage}` (written by benchmarks/palindrome_round4.py)", "",
             "T = 200, seed 0, the budget of docs/palindrome.md §5.8; held-out accuracy (4,000 palindromes).", "",
             "| model | setting | learning rate | parameters | best held-out % | steps to 99% | steps run | "
             "CPU s / step (1 thread, shared machine) | GFLOP / step |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (list(SIZES).index(r["model"]), r["setting"], r["rate"])):
        lines.append(f"| {r['model']} | {r['setting']} | {r['rate']:g} | {r['parameters']:,} | {100 * r['best']:.2f} "
                     f"| {r['steps_to_99'] or '—'} | {r['steps']} | {r['seconds_per_step']:.3f} "
                     f"| {r['gflops_per_step']:.2f} |")
    lines += ["", "Chosen so far (the rule of §5.8, among the runs finished):", ""]
    for model in SIZES:
        chosen = choose(rows, model)
        if chosen:
            lines.append(f"* {model}: {chosen['setting']}, learning rate {chosen['rate']:g}")
    (LOG / f"{stage}.md").write_text("\n".join(lines) + "\n")


def chosen_recipes() -> dict[str, dict]:
    """Each model's setting and rate, chosen by stage 2 (every rate finished), else None for that model."""
    rows = finished("select")
    recipes = {}
    for model in SIZES:
        setting = choose(rows, model, STUDY_RATE)
        done = setting and {r["rate"] for r in rows if r["model"] == model and r["setting"] == setting["setting"]}
        if done and done >= {STUDY_RATE, *OTHER_RATES}:
            recipes[model] = choose([r for r in rows if r["setting"] == setting["setting"]], model)
    return recipes


def hours_per_seed(recipe: dict, T: int) -> float:
    """The full budget's CPU hours at T, from the selection run's seconds per step at T = 200: linear in T for a
    recurrence, quadratic for attention (an upper bound: the fused attention's cost grows more slowly at small T)."""
    power = 2 if recipe["model"] == "transformer" else 1
    steps = BUDGET["max_epoch"] * STEPS_PER_EPOCH
    return steps * recipe["seconds_per_step"] * (T / SELECT_T) ** power / 3600


def plan(only: list[str] | None = None) -> list[tuple[dict, int, bool]]:
    """(recipe, T, affordable) for every cell of the round (of the models in `only`, if given)."""
    return [(recipe, T, hours_per_seed(recipe, T) <= MAX_CPU_HOURS)
            for model, recipe in chosen_recipes().items() if not only or model in only for T in ROUND_T]


def run_round(only: list[str] | None = None) -> None:
    """Three seeds per affordable cell, shortest T first; then two more at each model's boundary lengths; then the
    cells over budget, capped; last, the cells of models that failed at every seed of a shorter T (§5.8).
    `only`: these models' cells alone, in the same order (to run one model's next cells first)."""
    cells, rows = [(recipe, T) for recipe, T, affordable in plan(only) if affordable], finished("round")
    hopeless = [(recipe, T) for recipe, T in cells if failed_shorter(rows, recipe["model"], T)
                and not any(r["model"] == recipe["model"] and r["T"] == T for r in rows)]
    for recipe, T in sorted([cell for cell in cells if cell not in hopeless],
                            key=lambda cell: (cell[1], cost_before(rows, cell[0]["model"], cell[1]))):
        run_cell("round", recipe["model"], recipe["setting"], recipe["rate"], (T,), ROUND_SEEDS)
    for recipe, T in boundaries(cells):
        run_cell("round", recipe["model"], recipe["setting"], recipe["rate"], (T,), ROUND_SEEDS + BOUNDARY_SEEDS)
    for recipe, T, affordable in plan(only):   # the cells over budget, capped at MAX_CPU_HOURS (§5.8)
        cap = None if affordable else capped_epochs(finished("round"), recipe["model"], T)
        if cap:
            run_cell("round", recipe["model"], recipe["setting"], recipe["rate"], (T,), ROUND_SEEDS, max_epoch=cap)
    # further, doubling T while every seed learns (§5.8, amendment 3)
    for recipe in {recipe["model"]: recipe for recipe, _, _ in plan(only)}.values():
        T = ROUND_T[-1]
        while all_learned(finished("round"), recipe["model"], T):
            T *= 2
            epochs = epochs_within_budget(recipe, T)
            if epochs is None:
                break                           # not one epoch fits in the budget
            run_cell("round", recipe["model"], recipe["setting"], recipe["rate"], (T,), ROUND_SEEDS,
                     max_epoch=epochs if epochs < BUDGET["max_epoch"] else None)
    for recipe, T in hopeless:
        run_cell("round", recipe["model"], recipe["setting"], recipe["rate"], (T,), ROUND_SEEDS)


def epochs_within_budget(recipe: dict, T: int) -> int | None:
    """A cell's epochs: the full budget when a seed fits in MAX_CPU_HOURS, else the capped epochs (None: not one)."""
    if hours_per_seed(recipe, T) <= MAX_CPU_HOURS:
        return BUDGET["max_epoch"]
    return capped_epochs(finished("round"), recipe["model"], T)


def all_learned(rows: list[dict], model: str, T: int) -> bool:
    """Whether the model's round seeds at T all ran and all reached 99% on fresh palindromes."""
    fresh = [r["fresh"] for r in rows if r["model"] == model and r["T"] == T]
    return len(fresh) >= len(ROUND_SEEDS) and all(a is not None and a >= TARGET for a in fresh)


def capped_epochs(rows: list[dict], model: str, T: int) -> int | None:
    """The epochs that fit in MAX_CPU_HOURS per seed at T, from the step time measured at the longest shorter T,
    scaled as T to the power measured between the two longest lengths run (at least 1; 2 with one length)."""
    times: dict[int, list[float]] = {}
    for r in rows:
        if r["model"] == model and r["T"] < T and not r["capped"]:
            times.setdefault(r["T"], []).append(r["seconds_per_step"])
    if not times:
        return None
    lengths = sorted(times)
    last = median(times[lengths[-1]])
    power = math.log(last / median(times[lengths[-2]])) / math.log(lengths[-1] / lengths[-2]) \
        if len(lengths) > 1 else 2.0
    per_step = last * (T / lengths[-1]) ** max(1.0, power)
    return min(BUDGET["max_epoch"], int(MAX_CPU_HOURS * 3600 / per_step) // STEPS_PER_EPOCH) or None


def failed_shorter(rows: list[dict], model: str, T: int) -> bool:
    """Whether no seed of the model reached 99% held out at some shorter T (among the round's `rows`): such a
    cell runs after the others of its length (it still runs; the order only puts the informative runs first)."""
    return any(not any(r["best"] >= TARGET for r in rows if r["model"] == model and r["T"] == shorter)
               for shorter in {r["T"] for r in rows if r["model"] == model and r["T"] < T})


def cost_before(rows: list[dict], model: str, T: int) -> float:
    """The median CPU seconds to 99% of the model at the longest shorter T it was run at (infinite if none got
    there): within a length, the cheapest cells run first, so a session finishes as many cells as it can."""
    shorter = [r for r in rows if r["model"] == model and r["T"] < T]
    if not shorter:
        return math.inf
    longest = max(r["T"] for r in shorter)
    cost = median([r["steps_to_99"] * r["seconds_per_step"] for r in shorter if r["T"] == longest and r["steps_to_99"]])
    return math.inf if cost is None else cost


def boundaries(cells) -> list[tuple[dict, int]]:
    """Per model, the longest T where every seed reached 99% held out and the shortest where one did not."""
    rows = finished("round")
    found = []
    for recipe in {id(r): r for r, _ in cells}.values():
        lengths = sorted(T for r, T in cells if r is recipe)
        scores = {T: [x["best"] for x in rows if x["model"] == recipe["model"] and x["T"] == T] for T in lengths}
        lengths = [T for T in lengths if scores[T]]          # a length not run yet is no boundary
        solved = [T for T in lengths if all(best >= TARGET for best in scores[T])]
        longest = max(solved, default=None)
        failed = next((T for T in lengths if T not in solved), None)
        found += [(recipe, T) for T in (longest, failed) if T is not None]
    return found


def median(values: list[float]) -> float | None:
    """The median (the mean of the middle two for an even count), None for no values."""
    values = sorted(values)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def shown(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a share k / n."""
    if n == 0:
        return 0.0, 1.0
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def round_table() -> None:
    """docs/log/round4/round.md: per cell, seeds at >= 99% on fresh palindromes with their interval, the median
    steps to 99% held out, CPU s and GFLOP per step; the cells the budget rules out, with their cost estimate."""
    backfill_fresh("round")
    rows, lines = finished("round"), [
        "# Round 4 (written by benchmarks/palindrome_round4.py)", "",
        "Seeds at ≥ 99% on 2,000 fresh palindromes (the last epoch of each run) with the exact 95% "
        "(Clopper–Pearson) interval; "
        "steps to the first epoch at ≥ 99% held out, and the compute they took (steps × CPU s or GFLOP per step "
        "of the same run; medians over the seeds that got there). CPU seconds are one thread on a 2-core machine "
        "shared with one other 1-thread job: compare them within this table, not with idle-machine benchmarks.",
        "", "| model | T | seeds ≥ 99% fresh (95% interval) | median steps to 99% held out | median CPU s to 99% "
        "| median TFLOP to 99% | CPU s / step | GFLOP / step |", "|---|---|---|---|---|---|---|---|"]
    further = sorted({(r["model"], r["T"]) for r in rows if r["T"] > ROUND_T[-1]})
    cells = plan() + [(recipe, T, True) for recipe in chosen_recipes().values()
                      for model, T in further if model == recipe["model"]]
    for recipe, T, affordable in sorted(cells, key=lambda cell: (list(SIZES).index(cell[0]["model"]), cell[1])):
        at = [r for r in rows if r["model"] == recipe["model"] and r["T"] == T]
        if not affordable and not at:
            cap = capped_epochs(rows, recipe["model"], T)
            plan_ = (f"runs last, capped at {cap} epochs ({MAX_CPU_HOURS:g} CPU h)" if cap
                     else "not run: not one epoch fits; round 3's figure stands")
            lines.append(f"| {recipe['model']} | {T} | about {hours_per_seed(recipe, T):.1f} CPU hours per seed: "
                         f"{plan_} | — | — | — | — | — |")
            continue
        if not at:
            lines.append(f"| {recipe['model']} | {T} | not run yet | — | — | — | — | — |")
            continue
        fresh = [r["fresh"] for r in at if r["fresh"] is not None]
        good = sum(a >= TARGET for a in fresh)
        low, high = clopper_pearson(good, len(fresh))
        solved = [r for r in at if r["steps_to_99"]]
        steps = median([r["steps_to_99"] for r in solved])
        cpu = median([r["steps_to_99"] * r["seconds_per_step"] for r in solved])
        tflop = median([r["steps_to_99"] * r["gflops_per_step"] / 1000 for r in solved])
        seconds = sum(r["seconds_per_step"] for r in at) / max(1, len(at))
        label = f", capped at {at[0]['max_epoch']} epochs ({MAX_CPU_HOURS:g} CPU h)" if at[0]["capped"] else ""
        lines.append(f"| {recipe['model']} | {T} | {good}/{len(fresh)} ({100 * low:.0f}–{100 * high:.0f}%){label} "
                     f"| {shown(steps, '.0f')} | {shown(cpu, '.0f')} | {shown(tflop, '.1f')} | {seconds:.3f} "
                     f"| {at[0]['gflops_per_step']:.2f} |")
    (LOG / "round.md").write_text("\n".join(lines) + "\n")


def round_checkpoint(recipe: dict, T: int, seed: int, which: str = "last.pt") -> Path | None:
    """A checkpoint of a round run (the last, as the round scores it, or the best on its held-out split), where
    this machine still has its folder (a cell's sweep `...-seedsA_B_C` or one seed's `...-sN`, as run_cell now
    runs them, or a reproduction by `ship`); a capped cell's (`...-capN-T...`) counts too."""
    name = f"{recipe['model']}-{recipe['setting']}-lr{recipe['rate']:g}"
    found = sorted(path for pattern in (f"{name}-T{T}-s*", f"{name}-cap*-T{T}-s*")
                   for path in RUNS.glob(f"round/{pattern}/runs/{recipe['model']}-T{T}-s{seed}/checkpoints/{which}"))
    return found[0] if found else None


def generalise() -> None:
    """Stage 4 (issue 36 §4): each model's round runs at T = 200, seeds 0-2, scored as trained (no further
    training) on fresh palindromes of every length in GENERALISE_T, beside section 4's LSTM as its own line.
    Scores accumulate in docs/log/round4/generalise.json (a length already scored is not scored again)."""
    from lstmgan.recurrent.evaluate import evaluate_checkpoint

    path = LOG / "generalise.json"
    scores = json.loads(path.read_text()) if path.is_file() else {}
    contenders = [(f"{r['model']} ({r['setting']}, round 4)", round_checkpoint(r, SELECT_T, seed), seed)
                  for r in chosen_recipes().values() for seed in ROUND_SEEDS]
    contenders.append(("lstm (section 4: chrono, fixed data, its own budget)", CURRICULUM_LSTM, 0))
    for line, checkpoint, seed in contenders:
        for T in GENERALISE_T:
            key = f"{line} | seed {seed} | T {T}"
            if key in scores or checkpoint is None:
                continue
            n = GENERALISE_N.get(T, 1000)
            result = evaluate_checkpoint(checkpoint, n, FRESH_SEED, "cpu", input_length=T)
            scores[key] = {"line": line, "seed": seed, "T": T, "n": result["n"], "accuracy": result["accuracy"]}
            path.write_text(json.dumps(scores, indent=1) + "\n")
            print(f"{key}: {100 * result['accuracy']:.1f}%", flush=True)
    generalise_table(scores)


def generalise_table(scores: dict) -> None:
    """docs/log/round4/generalise.md: per line and length, each seed's accuracy and the pooled 95% interval."""
    lines = ["# Round 4: length generalisation (written by benchmarks/palindrome_round4.py generalise)", "",
             "Models trained at T = 200 under round 4's budget, scored as trained on fresh palindromes of "
             "longer T (seed " f"{FRESH_SEED}; " "1,000 per length, "
             + ", ".join(f"{n:,} at T = {T:,}" for T, n in GENERALISE_N.items()) + "). "
             "Per cell: each seed's accuracy, then the pooled accuracy over seeds with its 95% Wilson interval.",
             "", "| model | " + " | ".join(f"T = {T:,}" for T in GENERALISE_T) + " |",
             "|---|" + "---|" * len(GENERALISE_T)]
    for line in dict.fromkeys(v["line"] for v in scores.values()):
        cells = []
        for T in GENERALISE_T:
            at = sorted((v for v in scores.values() if v["line"] == line and v["T"] == T), key=lambda v: v["seed"])
            if not at:
                cells.append("—")
                continue
            right, total = sum(round(v["accuracy"] * v["n"]) for v in at), sum(v["n"] for v in at)
            low, high = wilson(right, total)
            cells.append(" / ".join(f"{100 * v['accuracy']:.1f}" for v in at)
                         + f" ({100 * right / total:.1f}; {100 * low:.1f}–{100 * high:.1f})")
        lines.append(f"| {line} | " + " | ".join(cells) + " |")
    (LOG / "generalise.md").write_text("\n".join(lines) + "\n")


SHIP_DIR = ROOT / "src" / "lstmgan" / "weights"


def seed0_runs(model: str, recipe: dict) -> dict[int, Path]:
    """The model's logged round runs of seed 0 that have a fresh-palindrome score, by T: the full-budget runs and
    the capped ones (`...-capN-...`), at the round's lengths and further (amendment 3)."""
    name = f"{model}-{recipe['setting']}-lr{recipe['rate']:g}"
    found = {}
    for kept in sorted((LOG / "round").glob(f"{name}*-{model}-T*-s0")):
        if re.fullmatch(rf"{re.escape(name)}(-cap\d+)?", kept.name.partition(f"-{model}-T")[0]) \
                and (kept / "fresh.json").is_file():
            found[json.loads((kept / "config.json").read_text())["input_length"]] = kept
    return found


def shipped_lengths(model: str, recipe: dict) -> list[int]:
    """T = 200, and the longest round length at which every seed of the model's cell holds 99% on fresh
    palindromes (the cell learned it, as amendment 3 reads "keeps going"), where seed 0's run is logged."""
    rows = [r for r in finished("round") if r["setting"] == recipe["setting"] and r["rate"] == recipe["rate"]]
    runs = seed0_runs(model, recipe)
    longest = max((T for T in runs if all_learned(rows, model, T)), default=0)
    return [SELECT_T] + ([longest] if longest > SELECT_T else [])


def reproduce(recipe: dict, T: int, kept: Path) -> Path | None:
    """Seed 0's run at T trained again (its folder went with an earlier session's machine), as run_cell ran it:
    the new run's best checkpoint if its curve (metrics.csv) is the logged one to the last digit, else None with
    the reason printed: a model is shipped only from the run the round logged."""
    config = json.loads((kept / "config.json").read_text())
    cap = config["max_epoch"] if config["max_epoch"] < BUDGET["max_epoch"] else None
    name, fixed = cell_config(recipe["model"], recipe["setting"], recipe["rate"], cap)
    print(f"reproducing {kept.name} (its checkpoint is not on this machine)", flush=True)
    run = train_seed("round", name, fixed, recipe["model"], T, 0)
    if (run / "metrics.csv").read_text() != (kept / "metrics.csv").read_text():
        print(f"not shipped: {run} does not repeat the logged curve {kept / 'metrics.csv'}", flush=True)
        return None
    return run / "checkpoints" / "best.pt"


def ship(only: list[str] | None = None) -> None:
    """Issue 36 §5: each model's round-4 seed 0 at T = 200, and at the longest T it learned, as
    pretrained:palindrome-<model>-T<T> (safetensors): its best epoch on its held-out split, as every shipped
    palindrome model (the round scores the last epoch; they differ only for a run that never solved T, as the
    RNN's), with its description in pretrained.json and its score on 2,000 fresh palindromes in metrics.json and
    in the file. A model already shipped is left alone. Seed 0's run is trained again where its folder is gone
    (reproduce), and shipped only if it repeats the logged curve. `only`: these models (one whose longest T is
    final, while another's runs go on)."""
    from lstmgan.loading import export_weights
    from lstmgan.recurrent.evaluate import evaluate_checkpoint
    from lstmgan.shipped import record_shipped

    index = json.loads((SHIP_DIR / "pretrained.json").read_text())
    for model, recipe in chosen_recipes().items():
        if only and model not in only:
            continue
        runs = seed0_runs(model, recipe)
        for T in shipped_lengths(model, recipe):
            name, checkpoint, kept = f"palindrome-{model}-T{T}", round_checkpoint(recipe, T, 0, "best.pt"), runs[T]
            if name in index:
                continue
            checkpoint = checkpoint or reproduce(recipe, T, kept)
            if checkpoint is None:
                continue
            steps = json.loads((kept / "config.json").read_text())["max_epoch"] * STEPS_PER_EPOCH
            options = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in SETTINGS[model][recipe["setting"]].items()) or "no memory option"
            file = f"palindrome_{model}_T{T}.safetensors"
            result = evaluate_checkpoint(checkpoint, 2000, 12345, "cpu")   # float32 weights: the export scores the same
            scores = {"input_length": T, "n": result["n"], "seed": result["seed"], "accuracy": result["accuracy"],
                      "loss": result["loss"],
                      "command": f"lstmgan palindrome evaluate --checkpoint pretrained:{name} --n 2000"}
            export_weights(checkpoint, SHIP_DIR / file, "palindrome", metrics=scores)
            index[name] = {"file": file, "kind": "palindrome", "description":
                           f"round 4's {model} (size {SIZES[model]}, {options}, learning rate {recipe['rate']:g}), "
                           f"seed 0 trained at T = {T} from scratch on fresh palindromes under the round's budget "
                           f"(batch 100, at most {steps:,} steps), its best epoch on its held-out split "
                           f"({100 * result['accuracy']:.1f}% on 2,000 fresh palindromes); see docs/palindrome.md "
                           "section 5.8"}
            record_shipped(name, index[name], scores, SHIP_DIR)
            print(f"shipped pretrained:{name}: {100 * result['accuracy']:.2f}% on 2,000 fresh palindromes", flush=True)


def select() -> None:
    """Stage 1: every setting at the study's rate; stage 2: the chosen setting at the two other rates."""
    for model in SIZES:
        for setting in SETTINGS[model]:
            run_cell("select", model, setting, STUDY_RATE)
            write_table("select")
    for model in SIZES:
        setting = choose(finished("select"), model, STUDY_RATE)["setting"]
        for rate in OTHER_RATES:
            run_cell("select", model, setting, rate)
            write_table("select")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["select", "round", "generalise", "ship"])
    parser.add_argument("--table", action="store_true", help="only rewrite the stage's table")
    parser.add_argument("--plan", action="store_true", help="round: print its cells and their cost, run nothing")
    parser.add_argument("--model", action="append", choices=sorted(SIZES),
                        help="round, ship: only this model (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.stage == "generalise":
        generalise()
    elif args.stage == "ship":
        ship(args.model)
    elif args.stage == "select":
        write_table("select") if args.table else select()
    elif args.plan:
        for recipe, T, affordable in plan():
            print(f"{recipe['model']:12s} {recipe['setting']:14s} lr {recipe['rate']:<7g} T = {T:5d}: "
                  f"{hours_per_seed(recipe, T):6.2f} CPU h per seed{'' if affordable else '  (over budget: skipped)'}")
    else:
        round_table() if args.table else run_round(args.model)

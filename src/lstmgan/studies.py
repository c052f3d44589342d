"""Pre-registered studies: a plan file declares everything that decides a result before the first run, and the
runner trains what is missing, seed by seed, resumably, then tabulates and plots. Below both parts: each part
brings only its cell (what one seed trains and how its outcome is read; see recurrent/study.py).

A plan (TOML) holds

    name, description, log            the study, and the folder its runs and tables go in
    [fixed]                           options every run gets
    [[contenders]] name, options      the models and their settings; optionally `rate` (its own learning rate,
                   rate, lengths      not chosen) and `lengths` (the sizes it runs at, among the plan's)
    lengths                           the sizes the study runs at (Part I: T)
    budgets                           or, in their place, budgets in iterations (Part II): each is its own
                                      horizon, and [horizon] is not needed
    [scoring]                         what the part's cell reads to score a seed (Part II: gan/study.py)
    [seeds] first, boundary           seeds per cell, and up to how many a cell with some learned seeds and
                                      some not (a boundary) grows
    [rate] grid, select_at, factor,   the learning-rate grid, the size where each contender's rate is chosen
           max_extensions, seed       (on the held-out split), and the bracketing rule: a choice at the grid's
                                      edge extends the grid by `factor` and chooses again
    [horizon] flops, max_steps        per size, one budget for every contender: a FLOP budget per seed (optional)
                                      and a step ceiling (tables keyed by the size, as strings)
    skip_after_none                   a contender that learns no seed at this size skips the larger ones
    [learned] accuracy, confidence,   what "learned" means (the score to reach within the horizon: on the held-out
              on                      split, or on fresh data, `on = "fresh"`) and the interval's confidence
                                      (Clopper–Pearson)
    runs                              where a seed's run folder is, under `log`: "runs/{contender}-T{size}-s{seed}"
                                      by default; a pattern with `*` reads runs logged before the plan (found by
                                      glob), and such a plan only tabulates: `run` trains nothing
    [[amendments]] date, reason,      every edit made after the first result: `run` refuses an edited plan
                   affects            without a new entry, and `table` prints the list
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from . import sweeps
from .errors import UsageError
from .runs import atomic_write_text
from .stats import clopper_pearson

if sys.version_info >= (3, 11):
    import tomllib
else:                                   # pragma: no cover - Python 3.10
    import tomli as tomllib

PLAN_KEYS = {"name", "description", "log", "fixed", "contenders", "lengths", "budgets", "seeds", "rate", "horizon",
             "skip_after_none", "learned", "scoring", "runs", "amendments"}
RUNS = "runs/{contender}-T{size}-s{seed}"
LEARNED_ON = ("held-out", "fresh")


@dataclass(frozen=True)
class Outcome:
    """What one seed did within its horizon."""

    learned: bool
    steps: int | None              # steps to learn (None: not within the horizon)
    flops: float | None            # training FLOPs to learn
    horizon_steps: int
    horizon_flops: float
    cpu_seconds: float | None      # measured, summed over the pieces the run ran in
    best: float                    # the best held-out score reached


class Cell(Protocol):
    """What a part brings: the options of one seed's run, the function that trains it (module-level, picklable:
    `train(config: dict, run_dir, resume, progress)`), and how its outcome is read from its run folder."""

    train: Callable[..., dict]

    def options(self, plan: "Plan", contender: dict, size: int, seed: int, rate: float) -> dict: ...

    def outcome(self, plan: "Plan", run_dir: Path, options: dict) -> Outcome | None: ...


@dataclass
class Plan:
    path: Path
    name: str
    log: Path
    fixed: dict
    contenders: list[dict]
    lengths: list[int]
    first_seeds: int
    boundary_seeds: int
    rates: list[float]
    select_at: int | None
    rate_factor: float
    max_extensions: int
    select_seed: int
    flops: dict[int, float]
    max_steps: dict[int, int]
    skip_after_none: int | None
    accuracy: float
    confidence: float
    amendments: list[dict] = field(default_factory=list)
    learned_on: str = "held-out"
    runs: str = RUNS
    raw: dict = field(default_factory=dict)

    def registered(self) -> dict:
        """What decides the results: the plan without its amendment list."""
        return {k: v for k, v in self.raw.items() if k != "amendments"}

    @property
    def logged(self) -> bool:
        """A plan over runs logged before it (its `runs` pattern globs): it tabulates and trains nothing."""
        return "*" in self.runs

    def lengths_of(self, contender: dict) -> list[int]:
        return sorted(contender.get("lengths", self.lengths))


def load_plan(path) -> Plan:
    """A plan file, checked; any mistake is one UsageError line naming the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: not a readable TOML plan ({error})") from None
    unknown = sorted(set(raw) - PLAN_KEYS)
    if unknown:
        raise UsageError(f"{path}: unknown plan key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise UsageError(f"{path}: {what}")

    need(isinstance(raw.get("name"), str) and raw["name"], "name must be a non-empty string")
    contenders = raw.get("contenders", [])
    need(isinstance(contenders, list) and contenders and all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("options", {}), dict)
        for c in contenders), "[[contenders]] needs at least one entry with a name and an options table")
    names = [c["name"] for c in contenders]
    need(len(set(names)) == len(names), "contender names must differ")
    for c in contenders:
        need(not isinstance(c.get("rate"), bool) and isinstance(c.get("rate", 1.0), (int, float))
             and c.get("rate", 1.0) > 0, f"contender {c['name']}: rate must be a positive learning rate")
    need(not ("lengths" in raw and "budgets" in raw), "a plan has lengths or budgets, not both")
    sized_by = "budgets" if "budgets" in raw else "lengths"
    lengths = raw.get(sized_by, [])
    need(isinstance(lengths, list) and lengths and all(isinstance(t, int) and t > 0 for t in lengths),
         f"{sized_by} must be a list of positive integers")
    for c in contenders:
        need(set(c.get("lengths", lengths)) <= set(lengths) and c.get("lengths", lengths),
             f"contender {c['name']}: lengths must be some of the plan's {sized_by}")
    seeds, rate, horizon, learned = (raw.get(k, {}) for k in ("seeds", "rate", "horizon", "learned"))
    first, boundary = seeds.get("first", 3), seeds.get("boundary", seeds.get("first", 3))
    need(isinstance(first, int) and first >= 1 and isinstance(boundary, int) and boundary >= first,
         "[seeds] first must be a positive integer and boundary at least first")
    every_own_rate = all("rate" in c for c in contenders)
    rates = rate.get("grid", [1.0] if every_own_rate else [])      # (unused when each contender has its rate)
    need(isinstance(rates, list) and rates and all(isinstance(r, (int, float)) and r > 0 for r in rates),
         "[rate] grid must be a list of positive learning rates")
    select_at = rate.get("select_at")
    need(len(rates) == 1 or isinstance(select_at, int), "[rate] select_at (a size) is needed with several rates")
    sizes = set(lengths) | ({select_at} if select_at else set())
    flops, max_steps = horizon.get("flops", {}), horizon.get("max_steps", {})
    if sized_by == "budgets":          # each budget is its own horizon, in steps
        need(not horizon, "[horizon] is not used with budgets (each budget is the horizon)")
        flops, max_steps = {}, {str(size): size for size in sizes}
    for size in sorted(sizes) if sized_by == "lengths" else ():
        need(isinstance(flops.get(str(size), 1), (int, float)) and flops.get(str(size), 1) > 0,
             f"[horizon] flops needs a positive budget for size {size}")
        need(isinstance(max_steps.get(str(size)), int) and max_steps[str(size)] > 0,
             f"[horizon] max_steps needs a positive step ceiling for size {size}")
    accuracy = learned.get("accuracy", 0.99)
    need(isinstance(accuracy, (int, float)) and 0 < accuracy <= 1, "[learned] accuracy must be in (0, 1]")
    need(learned.get("on", "held-out") in LEARNED_ON, f"[learned] on must be one of {', '.join(LEARNED_ON)}")
    runs = raw.get("runs", RUNS)
    need(isinstance(runs, str) and all(f"{{{k}}}" in runs for k in ("contender", "size", "seed")),
         "runs must be a folder pattern with {contender}, {size} and {seed}")
    amendments = raw.get("amendments", [])
    need(all(isinstance(a, dict) and {"date", "reason", "affects"} <= set(a) for a in amendments),
         "every [[amendments]] entry needs a date, a reason and what it affects")
    log = Path(raw.get("log", f"docs/log/{raw['name']}"))
    return Plan(path=path, name=raw["name"], log=log if log.is_absolute() else Path.cwd() / log,
                fixed=raw.get("fixed", {}), contenders=contenders, lengths=sorted(lengths), first_seeds=first,
                boundary_seeds=boundary, rates=sorted(float(r) for r in rates), select_at=select_at,
                rate_factor=float(rate.get("factor", 3)), max_extensions=int(rate.get("max_extensions", 2)),
                select_seed=int(rate.get("seed", 0)), flops={int(k): float(v) for k, v in flops.items()},
                max_steps={int(k): int(v) for k, v in max_steps.items()},
                skip_after_none=raw.get("skip_after_none"), accuracy=float(accuracy),
                confidence=float(learned.get("confidence", 0.95)), amendments=amendments, raw=raw,
                learned_on=learned.get("on", "held-out"), runs=runs)


# ------------------------------------------------------------------ pre-registration

def check_registration(plan: Plan) -> None:
    """Refuse a plan edited after its first result unless a new amendment says why; then record it."""
    lock = plan.log / "plan.json"
    current = {"plan": plan.registered(), "amendments": len(plan.amendments)}
    if lock.is_file() and any(plan.log.glob("*/*/summary.json")):
        saved = json.loads(lock.read_text())
        if saved["plan"] != json.loads(json.dumps(current["plan"])) and len(plan.amendments) <= saved["amendments"]:
            raise UsageError(f"{plan.path}: the plan changed after its first result; add an [[amendments]] entry "
                             "(date, reason, affects) that says what changed and why")
    plan.log.mkdir(parents=True, exist_ok=True)
    atomic_write_text(lock, json.dumps(current, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------ running

@dataclass
class Engine:
    """How runs are executed (see lstmgan.sweeps): local processes or Ray."""

    engine: str = "local"
    jobs: int = 1
    threads: int | None = None
    address: str | None = None
    max_retries: int = 3
    progress: bool = True

    def __post_init__(self):
        sweeps.check_engine(self.engine, self.jobs, self.threads, self.address, self.max_retries, 0)

    def execute(self, train: Callable, todo: list[tuple[dict, str]]) -> None:
        if not todo:
            return
        if self.engine == "ray":
            ray = sweeps.connect_ray(self.address)
            sweeps.run_on_ray(ray, train, todo, self.threads, 0, self.max_retries, self.progress)
        else:
            sweeps.run_locally(train, todo, self.jobs, self.threads, self.progress)


def rate_name(rate: float) -> str:
    return f"{rate:g}"


def select_dir(plan: Plan, contender: str, rate: float) -> Path:
    return plan.log / "select" / f"{contender}-lr{rate_name(rate)}"


def seed_dir(plan: Plan, contender: str, size: int, seed: int) -> Path:
    """A seed's run folder; for a logged plan, the one folder its pattern finds (none: where it would be)."""
    name = plan.runs.format(contender=contender, size=size, seed=seed)
    if not plan.logged:
        return plan.log / name
    found = sorted(plan.log.glob(name))
    if len(found) > 1:
        raise UsageError(f"{plan.path}: runs pattern {name!r} matches {len(found)} folders; make it match one")
    return found[0] if found else plan.log / name.replace("*", "")


def done(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file()


def outcome_of(cell: Cell, plan: Plan, run_dir: Path, options: dict) -> Outcome | None:
    return cell.outcome(plan, run_dir, options) if done(run_dir) else None


def choose_rate(outcomes: dict[float, Outcome]) -> float:
    """Learned with the fewest steps (ties: the higher best score); if none learned, the best score."""
    learned = {r: o for r, o in outcomes.items() if o.learned}
    if learned:
        return min(learned, key=lambda r: (learned[r].steps, -learned[r].best, r))
    return max(outcomes, key=lambda r: (outcomes[r].best, -r))


def select_rates(plan: Plan, cell: Cell, engine: Engine) -> dict[str, float]:
    """Each contender's rate, chosen at `select_at` on the held-out split; a choice at the grid's edge extends the
    grid by the plan's factor (at most `max_extensions` times) and chooses again. Written to choices.json."""
    own = {c["name"]: float(c["rate"]) for c in plan.contenders if "rate" in c}
    choosing = [c for c in plan.contenders if c["name"] not in own]
    if len(plan.rates) == 1 or not choosing:
        return {c["name"]: own.get(c["name"], plan.rates[0]) for c in plan.contenders}
    grids = {c["name"]: list(plan.rates) for c in choosing}
    chosen: dict[str, float] = dict(own)
    for _ in range(plan.max_extensions + 1):
        todo, options = [], {}
        for contender in choosing:
            for rate in grids[contender["name"]]:
                values = cell.options(plan, contender, plan.select_at, plan.select_seed, rate)
                options[contender["name"], rate] = values
                if not done(select_dir(plan, contender["name"], rate)):
                    todo.append((values, str(select_dir(plan, contender["name"], rate))))
        engine.execute(cell.train, todo)
        extended = False
        for contender in choosing:
            name, grid = contender["name"], grids[contender["name"]]
            outcomes = {r: outcome_of(cell, plan, select_dir(plan, name, r), options[name, r]) for r in grid}
            chosen[name] = choose_rate(outcomes)
            if len(grid) - len(plan.rates) < plan.max_extensions and chosen[name] in (grid[0], grid[-1]):
                grid.append(chosen[name] * plan.rate_factor if chosen[name] == grid[-1]
                            else chosen[name] / plan.rate_factor)
                grid.sort()
                extended = True
        if not extended:
            break
    atomic_write_text(plan.log / "choices.json", json.dumps(
        {"chosen": chosen, "grids": grids, "at_size": plan.select_at, "seed": plan.select_seed}, indent=2) + "\n")
    return chosen


def cell_seeds(plan: Plan, outcomes: list[Outcome | None]) -> int:
    """Seeds a cell needs: `first`, or `boundary` once its first seeds split between learned and not."""
    found = [o.learned for o in outcomes[:plan.first_seeds] if o is not None]
    mixed = len(found) == plan.first_seeds and 0 < sum(found) < len(found)
    return plan.boundary_seeds if mixed else plan.first_seeds


def run(plan: Plan, cell: Cell, engine: Engine) -> None:
    """Train every missing seed of the plan (resuming any a stop cut short), size by size."""
    if plan.logged:
        raise UsageError(f"{plan.path}: this plan reads runs logged before it (runs = {plan.runs!r}): it trains "
                         "nothing; use `study table`")
    check_registration(plan)
    rates = select_rates(plan, cell, engine)
    skipped: set[str] = set()
    for size in plan.lengths:
        active = [c for c in plan.contenders if c["name"] not in skipped and size in plan.lengths_of(c)]
        # (budgets: the seeds' outcomes carry no threshold, so cell_seeds keeps `first`)
        for stage in ("first", "boundary"):
            todo = []
            for contender in active:
                wanted = plan.first_seeds if stage == "first" else cell_seeds(
                    plan, seed_outcomes(plan, cell, contender, size, rates, plan.first_seeds))
                for seed in range(wanted):
                    run_dir = seed_dir(plan, contender["name"], size, seed)
                    if not done(run_dir):
                        todo.append((cell.options(plan, contender, size, seed, rates[contender["name"]]),
                                     str(run_dir)))
            engine.execute(cell.train, todo)
        if plan.skip_after_none == size:
            skipped |= {c["name"] for c in active
                        if not any(o and o.learned for o in seed_outcomes(plan, cell, c, size, rates, None))}


def seed_outcomes(plan: Plan, cell: Cell, contender: dict, size: int, rates: dict[str, float],
                  limit: int | None) -> list[Outcome | None]:
    """Outcomes of seeds 0, 1, ... of a cell (None for a seed not finished): the first `limit`, or, with no
    limit, every seed finished in a row from seed 0."""
    outcomes = []
    for seed in itertools.count():
        run_dir = seed_dir(plan, contender["name"], size, seed)
        if (seed >= limit) if limit is not None else not done(run_dir):
            return outcomes
        options = cell.options(plan, contender, size, seed, rates[contender["name"]])
        outcomes.append(outcome_of(cell, plan, run_dir, options))


# ------------------------------------------------------------------ tables and figures

def chosen_rates(plan: Plan) -> dict[str, float]:
    own = {c["name"]: float(c["rate"]) for c in plan.contenders if "rate" in c}
    if len(plan.rates) == 1 or len(own) == len(plan.contenders):
        return {c["name"]: own.get(c["name"], plan.rates[0]) for c in plan.contenders}
    path = plan.log / "choices.json"
    if not path.is_file():
        raise UsageError(f"{plan.path}: no results yet (run the plan first: {path} is missing)")
    return {**json.loads(path.read_text())["chosen"], **own}


def results(plan: Plan, cell: Cell) -> list[dict]:
    """One row per contender and size: its seeds' outcomes (the cells not run yet have none)."""
    rates = chosen_rates(plan)
    return [{"contender": c["name"], "size": size, "rate": rates.get(c["name"]),
             "outcomes": [o for o in seed_outcomes(plan, cell, c, size, rates, None) if o is not None]}
            for size in plan.lengths for c in plan.contenders if c["name"] in rates and size in plan.lengths_of(c)]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def shown(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table(plan: Plan, cell: Cell) -> str:
    """results.md: per contender and size, k/n learned within the horizon with its Clopper–Pearson interval, the
    medians to learn (steps, TFLOP, measured CPU s), the horizon, then the plan's amendments."""
    if hasattr(cell, "table"):        # a part with its own verdicts (Part II: against a baseline, by a band)
        lines = [f"# {plan.name}", "", f"Plan: `{plan.path.name}`.", "", *cell.table(plan, results(plan, cell))]
        return write_table(plan, lines)
    level = f"{100 * plan.confidence:g}%"
    scored = ("held-out accuracy ≥ {:g} within the horizon" if plan.learned_on == "held-out" else
              "accuracy ≥ {:g} on fresh data at the end of the run").format(plan.accuracy)
    lines = [f"# {plan.name}", "", f"Plan: `{plan.path.name}`. Learned: {scored}. Horizon: steps (and FLOPs) "
             f"each seed could train. {level} intervals: Clopper–Pearson. Medians over the seeds that reached "
             f"{plan.accuracy:g} held out.", "",
             f"| contender | T | rate | learned | {level} interval | median steps | median TFLOP | median CPU s "
             "| horizon TFLOP | horizon steps |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results(plan, cell):
        outcomes = row["outcomes"]
        if not outcomes:
            lines.append(f"| {row['contender']} | {row['size']} | {row['rate']:g} | not run | — | — | — | — | — | — |")
            continue
        k, n = sum(o.learned for o in outcomes), len(outcomes)
        low, high = clopper_pearson(k, n, plan.confidence)
        solved = [o for o in outcomes if o.steps is not None]
        steps = median([o.steps for o in solved])
        tflop = median([o.flops / 1e12 for o in solved])
        cpu = median([o.cpu_seconds for o in solved if o.cpu_seconds is not None])
        lines.append(f"| {row['contender']} | {row['size']} | {row['rate']:g} | {k}/{n} | {100 * low:.0f}–"
                     f"{100 * high:.0f}% | {shown(steps, '.0f')} | {shown(tflop, '.3g')} | {shown(cpu, '.1f')} "
                     f"| {outcomes[0].horizon_flops / 1e12:.3g} | {outcomes[0].horizon_steps} |")
    edge = edge_choices(plan)
    if edge:
        lines += ["", f"Rates chosen at the edge of their grid after the last allowed extension: {', '.join(edge)}."]
    return write_table(plan, lines)


def write_table(plan: Plan, lines: list[str]) -> str:
    """results.md: the table's lines, then the plan's amendments."""
    lines = lines + ["", "## Amendments", ""]
    lines += [f"- {a['date']}: {a['reason']} (affects: {a['affects']})" for a in plan.amendments] or ["None."]
    text = "\n".join(lines) + "\n"
    atomic_write_text(plan.log / "results.md", text)
    return text


def edge_choices(plan: Plan) -> list[str]:
    """Contenders whose chosen rate is still the grid's smallest or largest (the optimum was not bracketed)."""
    path = plan.log / "choices.json"
    if len(plan.rates) == 1 or not path.is_file():
        return []
    choices = json.loads(path.read_text())
    return [f"{name} ({rate:g})" for name, rate in choices["chosen"].items()
            if rate in (min(choices["grids"][name]), max(choices["grids"][name]))]


def survival(outcomes: list[Outcome], by: str) -> tuple[list[float], list[float], list[float]]:
    """The share of seeds learned against training FLOPs or steps (`by`): the step curve's x and y, and the
    horizons of the censored seeds (those that had not learned when their horizon ran out)."""
    n = len(outcomes)
    learned = sorted(getattr(o, by) for o in outcomes if o.learned)
    xs, ys = [0.0], [0.0]
    for i, x in enumerate(learned, 1):
        xs.append(float(x))
        ys.append(i / n)
    horizon = max((o.horizon_flops if by == "flops" else o.horizon_steps) for o in outcomes)
    xs.append(float(horizon))
    ys.append(ys[-1])
    censored = [float(o.horizon_flops if by == "flops" else o.horizon_steps) for o in outcomes if not o.learned]
    return xs, ys, censored


def plot(plan: Plan, cell: Cell) -> dict:
    """survival.png (or the cell's own figure): one panel per size and measure (FLOPs, steps), one curve per
    contender, censored seeds marked ×. Returns the curves drawn: {(size, by): {contender: (xs, ys)}}."""
    from .plots import pyplot

    rows = [r for r in results(plan, cell) if r["outcomes"]]
    sizes = sorted({r["size"] for r in rows})
    if not sizes:
        raise UsageError(f"{plan.path}: no results to plot yet")
    if hasattr(cell, "plot"):         # a part with a figure of its own (Part II: FID against iterations)
        plan.log.mkdir(parents=True, exist_ok=True)
        return cell.plot(plan, rows)
    colour = {c["name"]: f"C{i % 10}" for i, c in enumerate(plan.contenders)}     # one per contender, every panel
    plt = pyplot()
    fig, axes = plt.subplots(2, len(sizes), figsize=(4.2 * len(sizes), 6.4), squeeze=False)
    drawn: dict = {}
    for column, size in enumerate(sizes):
        for line, by in enumerate(("flops", "steps")):
            ax, curves = axes[line][column], drawn.setdefault((size, by), {})
            for r in (r for r in rows if r["size"] == size):
                xs, ys, censored = survival(r["outcomes"], by)
                scale = 1e12 if by == "flops" else 1
                (curve,) = ax.step([x / scale for x in xs], ys, where="post", color=colour[r["contender"]],
                                   label=f"{r['contender']} ({sum(o.learned for o in r['outcomes'])}/"
                                         f"{len(r['outcomes'])})")
                if censored:
                    ax.plot([c / scale for c in censored], [ys[-1]] * len(censored), "x", color=curve.get_color())
                curves[r["contender"]] = (xs, ys)
            ax.set(xlabel="training TFLOP" if by == "flops" else "training steps", ylabel="share of seeds learned",
                   ylim=(-0.02, 1.02), title=f"T = {size}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"{plan.name}: seeds learned within the horizon (× censored at the horizon)")
    fig.tight_layout()
    plan.log.mkdir(parents=True, exist_ok=True)
    fig.savefig(plan.log / "survival.png", dpi=110)
    plt.close(fig)
    return drawn

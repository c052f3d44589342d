"""Studies: many independent runs (a grid of options x seeds) of either part, on one of two engines.

* "local": one after another in this process, or `--jobs N` processes of this machine;
* "ray": each run is a Ray task (`ray.remote` with `max_retries`) on a local Ray instance sized to
  the machine, or on an existing cluster (`--address auto|HOST:PORT`).

Every run is an ordinary run directory `OUT/runs/<name>/`, and a run decides for itself whether to
start or resume (its directory holds a run -> resume). So a task that Ray retries, on any node
that sees the shared `OUT`, continues from its last checkpoint, and `sweep --resume` after the
driver itself died keeps what is finished and continues the rest. The tables are written from the
runs' `summary.json` files, the same way whichever engine ran them.
"""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from .config import Config, flag_name, short_name
from .errors import UsageError
from .ray_local import connect_ray
from .runs import atomic_write_text

ENGINES = ("local", "ray")


@dataclass
class Study:
    """What a part brings to a sweep: its config (whose options carry their short names for run folders), its
    tables, and the function that trains one run (`train(config: dict, run_dir, resume, progress) -> summary`;
    it must be picklable by reference, a module-level function, for the local processes and Ray)."""

    config_class: type[Config]
    write_results: Callable[[Path, list[dict], list[str]], None]
    train: Callable[..., dict]

    @property
    def kind(self) -> str:
        return self.config_class.kind


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the listed values, in the order the keys are given."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def run_name(point: dict, config_class: type[Config]) -> str:
    """A run's folder: each point's option by its short name (`option(short=)`) and value, e.g. lstm-T35-s0."""
    short = {f.name: short_name(f) for f in config_class.option_fields()}
    return "-".join(f"{short.get(k, k)}{v}" for k, v in point.items()).replace("/", "_")


def run_one(train: Callable, config: dict, run_dir: str, threads: int | None) -> dict:
    """Train one run of a sweep (in any process, on any node): start it, or resume what is there."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    path = Path(run_dir)
    started = path.is_dir() and any(path.iterdir())
    # a sweep or study may resume on another node or machine: allowed, and recorded in the run's config.json
    return train(config, run_dir, resume=started, progress=False, allow_host_change=True)


def sweep(study: Study, grid: dict[str, list], fixed: dict, out, resume: bool = False, engine: str = "local",
          jobs: int = 1, threads: int | None = None, address: str | None = None, max_retries: int = 3,
          gpus_per_run: float = 0, progress: bool = True) -> list[dict]:
    """Train every point of `grid` (with the `fixed` options) under `out`; write the tables and figures."""
    out = Path(out)
    points = expand_grid(grid)
    configs = [study.config_class.from_dict({**fixed, **point}).validate() for point in points]
    check_engine(engine, jobs, threads, address, max_retries, gpus_per_run)
    spec = {"kind": study.kind, "grid": grid, "fixed": fixed}
    check_sweep_directory(out, spec, resume, study.config_class.changeable_keys())
    ray = connect_ray(address) if engine == "ray" else None     # fails here, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.json", json.dumps(spec, indent=2) + "\n")

    run_dirs = [out / "runs" / run_name(point, study.config_class) for point in points]
    todo = [(config.to_dict(), str(run_dir)) for config, run_dir in zip(configs, run_dirs)
            if not (run_dir / "summary.json").is_file()]
    if engine == "ray":
        run_on_ray(ray, study.train, todo, threads, gpus_per_run, max_retries, progress)
    else:
        run_locally(study.train, todo, jobs, threads, progress)

    results = [{**config.to_dict(), **json.loads((run_dir / "summary.json").read_text())}
               for config, run_dir in zip(configs, run_dirs)]
    study.write_results(out, results, [k for k in grid if len(grid[k]) > 1 and k != "seed"])
    return results


def check_engine(engine, jobs, threads, address, max_retries, gpus_per_run) -> None:
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--jobs must be a positive integer (got {jobs})")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be a positive integer (got {threads})")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise UsageError(f"--max-retries must be 0 or a positive integer (got {max_retries})")
    if gpus_per_run < 0:
        raise UsageError(f"--gpus-per-run must be 0 or positive (got {gpus_per_run})")
    if engine == "local" and (address or gpus_per_run):
        raise UsageError("--address and --gpus-per-run apply to --engine ray")


def check_sweep_directory(out: Path, spec: dict, resume: bool, changeable: set[str]) -> None:
    """A new sweep needs an empty --out; a resumed one the same flags (changeable ones aside)."""
    def fixed_part(s: dict) -> dict:
        return {"kind": s.get("kind", spec["kind"]), "grid": s["grid"],
                "fixed": {k: v for k, v in s["fixed"].items() if k not in changeable}}

    if resume:
        if not (out / "sweep.json").is_file():
            raise UsageError(f"--resume: {out} holds no sweep to resume (expected {out / 'sweep.json'})")
        saved = json.loads((out / "sweep.json").read_text())
        if fixed_part(saved) != fixed_part(json.loads(json.dumps(spec))):
            raise UsageError(f"--resume: the sweep in {out} was started with other flags; repeat them exactly "
                             f"(only {', '.join(flag_name(k) for k in sorted(changeable))} may change), "
                             "or start a new sweep in another --out")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} already exists and is not empty; pass --resume to continue that sweep, "
                         "or choose a new directory")


# ------------------------------------------------------------------ local engine

def run_locally(train: Callable, todo: list[tuple[dict, str]], jobs: int, threads: int | None, progress: bool) -> None:
    bar = progress_bar(len(todo), progress)
    if jobs == 1:
        for config, run_dir in todo:
            run_one(train, config, run_dir, threads)
            bar.update()
    else:
        per_job = threads or max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(run_one, train, c, d, per_job) for c, d in todo]):
                future.result()
                bar.update()
    bar.close()


def progress_bar(total: int, show: bool):
    from .training import progress_bar as bar

    return bar(total, "runs", show)


# ------------------------------------------------------------------ Ray engine

def run_on_ray(ray, train: Callable, todo: list[tuple[dict, str]], threads: int | None, gpus_per_run: float,
               max_retries: int, progress: bool) -> None:
    """One task per run; results are collected as they finish. A task that dies is retried by Ray."""
    task = ray.remote(run_one).options(num_cpus=threads or 1, num_gpus=gpus_per_run, max_retries=max_retries,
                                       retry_exceptions=False)
    pending = [task.remote(train, config, run_dir, threads or 1) for config, run_dir in todo]
    bar = progress_bar(len(pending), progress)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done)
            except ray.exceptions.RayTaskError as error:
                cause = error.cause if isinstance(getattr(error, "cause", None), UsageError) else None
                raise cause or RuntimeError(f"a sweep run failed on Ray: {error}") from None
            except ray.exceptions.WorkerCrashedError:
                raise RuntimeError(f"a sweep run's process died more than --max-retries {max_retries} times; "
                                   "its run directory keeps the last checkpoint (sweep --resume continues)") \
                    from None
            bar.update()
    finally:
        bar.close()
        ray.shutdown()

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
import secrets
import socket
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from .config import Config, flag_name
from .errors import UsageError
from .runs import atomic_write_text

ENGINES = ("local", "ray")
RAY_HINT = "pip install 'lstmgan[ray]'"
# Ray's token authentication (since Ray 2.52): RAY_AUTH_MODE=token, and the token from RAY_AUTH_TOKEN, else the file
# named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (the file `ray.init` creates for a local instance)
RAY_AUTH_MODE = "RAY_AUTH_MODE"
RAY_TOKEN_VARIABLES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
RAY_DEFAULT_TOKEN_FILE = Path("~") / ".ray" / "auth_token"
# Ray keeps a node IP of 127.0.0.1 (and then binds its servers to loopback) only while this is 0; see loopback_only_ray
RAY_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# test hook: the run's process kills itself (SIGKILL) once, right after its first checkpoint
KILL_HOOK = "LSTMGAN_KILL_AFTER_FIRST_CHECKPOINT"


@dataclass
class Study:
    """What a part brings to a sweep: its config, short names for run folders, and its tables."""

    config_class: type[Config]
    short_names: dict[str, str]
    write_results: Callable[[Path, list[dict], list[str]], None]

    @property
    def kind(self) -> str:
        return self.config_class.kind


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the listed values, in the order the keys are given."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def run_name(point: dict, short_names: dict[str, str]) -> str:
    return "-".join(f"{short_names.get(k, k)}{v}" for k, v in point.items()).replace("/", "_")


def run_one(kind: str, config: dict, run_dir: str, threads: int | None) -> dict:
    """Train one run of a sweep (in any process, on any node): start it, or resume what is there."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if kind == "palindrome":
        from .recurrent.train import train
    else:
        from .gan.train import train
    marker = os.environ.get(KILL_HOOK)
    if marker and not Path(marker).exists():
        _kill_after_first_checkpoint(Path(run_dir), Path(marker))
    path = Path(run_dir)
    started = path.is_dir() and any(path.iterdir())
    return train(config, run_dir, resume=started, progress=False)


def _kill_after_first_checkpoint(run_dir: Path, marker: Path) -> None:
    def watch():
        while not (run_dir / "checkpoints" / "last.pt").exists():
            threading.Event().wait(0.02)
        try:
            with open(marker, "x") as f:     # only the first run to get here dies, and only once
                f.write(str(run_dir))
        except FileExistsError:
            return
        os.kill(os.getpid(), 9)
    threading.Thread(target=watch, daemon=True).start()


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
    ray = connect_ray(address, threads) if engine == "ray" else None     # fails here, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.json", json.dumps(spec, indent=2) + "\n")

    run_dirs = [out / "runs" / run_name(point, study.short_names) for point in points]
    todo = [(config.to_dict(), str(run_dir)) for config, run_dir in zip(configs, run_dirs)
            if not (run_dir / "summary.json").is_file()]
    if engine == "ray":
        run_on_ray(ray, study.kind, todo, threads, gpus_per_run, max_retries, progress)
    else:
        run_locally(study.kind, todo, jobs, threads, progress)

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

def run_locally(kind: str, todo: list[tuple[dict, str]], jobs: int, threads: int | None, progress: bool) -> None:
    bar = progress_bar(len(todo), progress)
    if jobs == 1:
        for config, run_dir in todo:
            run_one(kind, config, run_dir, threads)
            bar.update()
    else:
        per_job = threads or max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            for future in as_completed([pool.submit(run_one, kind, c, d, per_job) for c, d in todo]):
                future.result()
                bar.update()
    bar.close()


def progress_bar(total: int, show: bool):
    from .training import progress_bar as bar

    return bar(total, "runs", show)


# ------------------------------------------------------------------ Ray engine

def connect_ray(address: str | None, threads: int | None):
    """The `ray` module, initialised: a local instance sized to this machine, or the cluster at `address`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")      # no usage reporting unless asked for
    if not address:
        os.environ.setdefault(RAY_AUTH_MODE, "token")          # before `import ray`, which reads it once
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: {RAY_HINT}") from None
    if address and address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--address must be auto or HOST:PORT (got {address!r})")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
        except OSError as error:
            raise UsageError(f"--address {address}: no Ray cluster answers there ({error.strerror or error})") \
                from None
    env = {"env_vars": {k: v for k, v in os.environ.items()
                        if k.startswith(("LSTMGAN_", "TORCH_EXTENSIONS_DIR", "XDG_CACHE_HOME"))}}
    try:
        if ray.is_initialized():
            ray.shutdown()
        if address:
            reload_ray_auth_settings()
            loopback = address.split(":")[0] in ("127.0.0.1", "localhost")   # else Ray picks the routed address
            ray.init(address=address, runtime_env=env, logging_level="ERROR", log_to_driver=False,
                     **({"_node_ip_address": "127.0.0.1"} if loopback else {}))
        else:
            start_local_ray(ray, env)
    except (ConnectionError, RuntimeError, ValueError, OSError, ray.exceptions.RayError) as error:
        # a refused token shows only in the cause (Ray retries, then says it could not connect)
        refused = any("InvalidAuthToken" in str(e) or "authentication token" in str(e).lower()
                      for e in (error, error.__cause__) if e)
        hint = ("; the cluster wants its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
                "as on its nodes (docs/distributed.md)") if refused else ""
        raise UsageError(f"--engine ray: could not {'join ' + address if address else 'start Ray'} "
                         f"({' '.join(str(error).split())[:200]}){hint}") from None
    return ray


def start_local_ray(ray, runtime_env: dict) -> None:
    """A Ray instance on this machine that admits no stranger: its servers listen on loopback only, and every one
    of them refuses a client without the instance's token (other users of this machine are strangers too)."""
    require_ray_token()
    with loopback_only_ray():
        ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", runtime_env=runtime_env,
                 # nothing a sweep needs, and each would be one more server where ray[default] is installed:
                 # the dashboard (port 8265) and the metrics agent's Prometheus endpoint
                 include_dashboard=False, _system_config={"enable_metrics_collection": False},
                 logging_level="ERROR", log_to_driver=False)


def require_ray_token() -> None:
    """Token authentication on for the local instance (unless the user chose a mode), with a token Ray will find.

    Ray >= 2.59 turns it on by itself for `ray.init()`, earlier ones (2.52-2.58) only when asked. For a local
    instance `ray.init` creates the token file when it is missing, but readable by every user of the machine
    (umask 022): it is created here first, at the same place and in the same format, readable by its owner only,
    and one that others can read is made private (whoever reads it may run code in every instance using it).
    """
    if os.environ.setdefault(RAY_AUTH_MODE, "token").lower() == "token" \
            and not any(os.environ.get(name) for name in RAY_TOKEN_VARIABLES):
        token_file = RAY_DEFAULT_TOKEN_FILE.expanduser()
        token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(secrets.token_hex(32))         # as `ray get-auth-token --generate`: 256 random bits, hex
        except FileExistsError:                        # the user's (or an earlier instance's) token: keep it
            if token_file.stat().st_mode & 0o077:
                token_file.chmod(0o600)
    reload_ray_auth_settings()


def reload_ray_auth_settings() -> None:
    """Ray reads RAY_AUTH_MODE once per process, when it is imported (RayConfig), and caches the token it loaded:
    have it read both again, so that what the environment says now is what this process sends (Ray does the same
    when it turns token auth on by itself). Needed where Ray was used before in this process (tests, notebooks)."""
    from ray import _raylet

    _raylet.Config.initialize("")
    _raylet.AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def loopback_only_ray():
    """Keep the local instance's node IP at 127.0.0.1, which makes Ray bind its servers to loopback.

    On Linux `ray.init(_node_ip_address="127.0.0.1")` is not enough: Ray replaces a loopback node IP by the machine's
    routed address (`services.resolve_ip_for_localhost`), and then the GCS, the raylet (node manager and object
    manager) and every worker listen on all interfaces, the runtime-env agent on the routed address. It keeps
    127.0.0.1 only where it expects no cluster: with `ray_constants.ENABLE_RAY_CLUSTER` off
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when Ray is imported). Then every server binds to 127.0.0.1
    (measured with `ss -ltnp`, see docs/distributed.md). Off here, during `ray.init`, for this process (which
    imported Ray already) and for the processes it starts (they inherit the variable); restored afterwards.
    """
    from ray._private import ray_constants

    saved_switch, saved_variable = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(RAY_CLUSTER_SWITCH)
    ray_constants.ENABLE_RAY_CLUSTER, os.environ[RAY_CLUSTER_SWITCH] = False, "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_switch
        if saved_variable is None:
            os.environ.pop(RAY_CLUSTER_SWITCH, None)
        else:
            os.environ[RAY_CLUSTER_SWITCH] = saved_variable


def run_on_ray(ray, kind: str, todo: list[tuple[dict, str]], threads: int | None, gpus_per_run: float,
               max_retries: int, progress: bool) -> None:
    """One task per run; results are collected as they finish. A task that dies is retried by Ray."""
    task = ray.remote(run_one).options(num_cpus=threads or 1, num_gpus=gpus_per_run, max_retries=max_retries,
                                       retry_exceptions=False)
    pending = [task.remote(kind, config, run_dir, threads or 1) for config, run_dir in todo]
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

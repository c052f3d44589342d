"""The scaffold both training loops share, so that each loop body is only its own arithmetic.

* `Progress`: where a run stands (epoch, step in the epoch, iterations, wall time);
* `epoch_batches`: the batches of the current epoch still to train, resumable mid-epoch;
* `TrainState`: the named parts a checkpoint restores (modules, optimizers, RNGs, counters);
* `Session`: checkpoints, the progress bar and Ctrl-C / SIGTERM at step boundaries;
* `StepLog`: per-step values kept on the device until a log point, checked for NaN.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from tqdm import tqdm  # text bars: tqdm.auto needs ipywidgets in notebooks

from .config import Config
from .errors import TrainingDiverged, TrainingInterrupted
from .runs import Run
from .seeding import epoch_order
from .signals import StopRequest


@dataclass
class Progress:
    """Where a run stands: the epoch being trained, batches done in it and in all, and what it cost so far: wall
    seconds and process CPU seconds (all threads), each summed over the pieces (sessions) a resumed run ran in."""

    epoch: int = 1
    step: int = 0
    iteration: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    pieces: int = 0

    def advance(self) -> None:
        self.step, self.iteration = self.step + 1, self.iteration + 1

    def next_epoch(self) -> None:
        self.epoch, self.step = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def epoch_batches(seed: int, progress: Progress, n: int, batch_size: int, device) -> tuple[torch.Tensor, ...]:
    """Index batches of this epoch's seeded shuffle of range(n), from `progress.step` on (a resume mid-epoch)."""
    return epoch_order(seed, progress.epoch, n).to(device).split(batch_size)[progress.step:]


class RandomState:
    """The RNG states a run needs back on resume: torch's global generator and the named ones given."""

    def __init__(self, **generators: torch.Generator):
        self.generators = generators

    def state_dict(self) -> dict:
        return {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in self.generators.items()}}

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        for name, g in self.generators.items():
            g.set_state(state[name])


class TrainState:
    """The parts of a training run that a checkpoint holds, by name (each with state_dict / load_state_dict)."""

    def __init__(self, progress: Progress, step_log: "StepLog", **parts):
        self.progress, self.step_log = progress, step_log
        self.parts = {"progress": progress, "step_log": step_log, **parts}

    def state_dict(self) -> dict:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state[name])

    def modules(self) -> list[torch.nn.Module]:
        return [part for part in self.parts.values() if isinstance(part, torch.nn.Module)]


class Session:
    """A training run in progress: its checkpoints, progress bar and stop requests.

        with Session(run, config, state, total, show=True, model=lambda: G_ema) as session:
            ... one step ...
            session.step_done()          # a Ctrl-C / SIGTERM here saves and raises TrainingInterrupted
            session.save("best")         # last.pt, and checkpoints/best.pt

    A checkpoint's "model" entry holds the weights `load_checkpoint` deploys: the state's
    "model" part, or the network `model` returns (e.g. the EMA of a GAN's generator).
    """

    def __init__(self, run: Run, config: Config, state: TrainState, total: int, show: bool = True,
                 description: str = "", model: Callable[[], torch.nn.Module] | None = None):
        self.run, self.config, self.state, self.model = run, config, state, model
        self.bar = tqdm(total=total, initial=state.progress.iteration, desc=description or config.kind,
                        disable=not show, unit="it", dynamic_ncols=True, file=sys.stderr, leave=False)
        self.stop = StopRequest()
        # the clocks run from the piece's start (Run), on top of what earlier pieces recorded
        self.started = run.wall_started - state.progress.seconds
        self.cpu_started = run.cpu_started - state.progress.cpu_seconds
        state.progress.pieces += 1        # this session is one more piece of the run

    def __enter__(self) -> "Session":
        self.stop.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self.bar.close()
        return self.stop.__exit__(*exc)

    def elapsed(self) -> tuple[float, float]:
        """(wall seconds, process CPU seconds) of the run so far, every piece included."""
        return time.perf_counter() - self.started, time.process_time() - self.cpu_started

    def step_done(self) -> None:
        self.bar.update()
        if self.stop.requested:
            self.save()
            where = self.state.progress
            raise TrainingInterrupted(
                f"interrupted at iteration {where.iteration} (epoch {where.epoch}); checkpoint saved. "
                f"Resume with: lstmgan {self.config.kind} train --out {self.run.path} --resume",
                self.stop.signal_number)

    def save(self, *snapshots: str) -> None:
        """Checkpoint now (never weights that became NaN/Inf: the last good checkpoint stays)."""
        where = self.state.progress
        where.seconds, where.cpu_seconds = self.elapsed()
        self.state.step_log.check()
        for module in self.state.modules():
            for name, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise TrainingDiverged(f"weight {name} became NaN/Inf by iteration {where.iteration}")
        payload = self.state.state_dict()
        if self.model is not None:
            payload["model"] = self.model().state_dict()
        self.run.save_checkpoint(self.config.kind, self.config, snapshots, **payload)


class StepLog:
    """Per-step values (losses, counts) kept on the training device until a log point.

    Recording costs no host-device sync; `take()` copies the window to the CPU once and
    raises TrainingDiverged, naming the step, if any value is NaN or Inf. The unlogged
    window travels in checkpoints, so an interrupted run resumes with exactly the rows an
    uninterrupted one would write.
    """

    def __init__(self, names: list[str], capacity: int, device: torch.device):
        self.names = list(names)
        self.buffer = torch.zeros(capacity, len(names), device=device)
        self.steps: list[int] = []          # global step number of each buffered row

    def add(self, step: int, *values: torch.Tensor | float) -> None:
        if len(self.steps) == len(self.buffer):       # grow rather than fail on an odd window
            self.buffer = torch.cat([self.buffer, torch.zeros_like(self.buffer)])
        self.buffer[len(self.steps)] = torch.stack([torch.as_tensor(v, dtype=self.buffer.dtype,
                                                                    device=self.buffer.device) for v in values])
        self.steps.append(step)

    def check(self) -> torch.Tensor:
        """The buffered rows on the CPU; TrainingDiverged if a row holds NaN/Inf."""
        rows = self.buffer[:len(self.steps)].cpu()
        bad = (~torch.isfinite(rows)).any(1).nonzero()
        if len(bad):
            k = int(bad[0])
            column = self.names[int((~torch.isfinite(rows[k])).nonzero()[0])]
            raise TrainingDiverged(f"loss {column} became {rows[k].tolist()} at iteration {self.steps[k]}")
        return rows

    def take(self) -> torch.Tensor:
        rows = self.check()
        self.steps = []
        return rows

    def state_dict(self) -> dict:
        return {"rows": self.buffer[:len(self.steps)].cpu(), "steps": torch.tensor(self.steps, dtype=torch.long)}

    def load_state_dict(self, state: dict) -> None:
        rows = state["rows"].to(self.buffer)
        self.steps = [int(s) for s in state["steps"]]
        self.buffer[:len(rows)] = rows


def progress_bar(total: int, description: str, show: bool):
    """A text progress bar on stderr (for work outside a training Session)."""
    return tqdm(total=total, desc=description, disable=not show, unit="it", dynamic_ncols=True, file=sys.stderr,
                leave=False)

"""Training palindrome classifiers (any registered model) into a run directory."""

from __future__ import annotations

import json
import math
import warnings

import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..errors import UsageError
from ..loading import load_checkpoint
from ..plots import line_plot
from ..runs import Run, atomic_write_text, start_run
from ..seeding import seed_everything
from ..training import Progress, RandomState, Session, StepLog, TrainState, epoch_batches
from . import backends
from .config import PalindromeConfig
from .evaluate import evaluate
from .models import KIND
from .palindrome import DataSizeWarning, FreshPalindromes, make_palindrome_splits
from .registry import build_model, model_spec, parameter_count


def train(config: PalindromeConfig | dict, out, resume: bool = False, progress: bool = True,
          allow_host_change: bool = False) -> dict:
    """Train one model on palindromes; writes the run directory `out` and returns its summary. A resume on another
    thread count, torch build or CPU capability needs `allow_host_change` (see runs.start_run)."""
    run, config, checkpoint = start_run(PalindromeConfig, config, out, resume, allow_host_change)
    initial = initial_weights(config) if config.init_from and not checkpoint else None
    device = resolve_device(config.device)
    backend = backends.resolved_name(config.backend, device, has_kernel=model_spec(config.model).has_kernel)
    train_set, test_set = palindrome_splits(config, device, warn=not resume)

    seed_everything(config.seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.learning_rate)
    fresh = FreshPalindromes(test_set, config.input_length, config.input_dim, config.num_classes, config.seed) \
        if config.data == "fresh" else None
    step_log = StepLog(["loss_sum", "correct", "count"], math.ceil(len(train_set) / config.batch_size), device)
    where = Progress()
    state = TrainState(where, step_log, model=model, optimizer=optimizer, rng=RandomState())
    if checkpoint:
        state.load_state_dict(checkpoint)
    elif initial:
        model.load_state_dict(initial)
    segment = config.resolved_bptt_segment() if backend == backends.COMPILED else None
    run.start(config, resolved_device=str(device), resolved_backend=backend, resolved_bptt_segment=segment,
              train_size=len(train_set), test_size=len(test_set))
    if config.tensorboard:
        run.mirror_to_tensorboard("epoch", next_step=where.epoch)

    total = config.max_epoch * math.ceil(len(train_set) / config.batch_size)
    stopped_early = stop_reason(config, run)
    with Session(run, config, state, total, progress, f"{config.model} T={config.input_length}") as session:
        while where.epoch <= config.max_epoch and not stopped_early:
            for index in epoch_batches(config.seed, where, len(train_set), config.batch_size, device):
                x, y = fresh.batch(where.iteration, config.batch_size, device) if fresh else train_set.batch(index)
                loss, correct = train_step(model, optimizer, x, y, config.max_norm)
                where.advance()
                step_log.add(where.iteration, loss * len(y), correct, len(y))
                session.step_done()
            log_epoch(run, where.epoch, step_log, *evaluate(model, test_set))
            improved = run.rows[-1]["test_accuracy"] > max(run.metric_column("test_accuracy")[:-1], default=-1.0)
            stopped_early = stop_reason(config, run)
            where.next_epoch()
            session.save(*(("best",) if improved else ()))
    summary = summarize(run, config, stopped_early, where) | {"backend": backend, "parameters": parameter_count(model)}
    run.finish(config, {"final_test_accuracy": summary["final_test_accuracy"] or 0.0,
                        "best_test_accuracy": summary["best_test_accuracy"] or 0.0})
    plot_curves(run, config)
    atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def parameter_groups(model, config: PalindromeConfig) -> list[dict]:
    """The optimizer's parameter groups: one, unless the model's registry entry gives some their own rate."""
    groups = model_spec(config.model).parameter_groups
    return groups(model, config) if groups else [{"params": list(model.parameters())}]


def train_step(model, optimizer, x, y, max_norm: float):
    """One Adam step on cross-entropy of the logits; returns (loss, number correct) as tensors."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def palindrome_splits(config: PalindromeConfig, device, warn: bool):
    """The run's train and test splits on `device`; the data-size warning is shown once, not on resume."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataSizeWarning)
        train_set, test_set = make_palindrome_splits(config.input_length, config.data_size, config.portion_train,
                                                     config.input_dim, config.seed, config.num_classes)
    if caught and warn:
        warnings.warn(str(caught[0].message), DataSizeWarning, stacklevel=3)
    train_set.sequences, test_set.sequences = train_set.sequences.to(device), test_set.sequences.to(device)
    return train_set, test_set


def initial_weights(config: PalindromeConfig) -> dict:
    """The weights of --init-from: another palindrome run's (any input length; the same network shape)."""
    source = load_checkpoint(config.init_from, kind=KIND)
    defaults = PalindromeConfig.defaults()     # a model saved before an option existed had its default
    for key, ours in config.architecture().items():
        theirs = source.config.get(key, defaults[key])
        if theirs != ours:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"--init-from {config.init_from}: its {flag} is {theirs}, "
                             f"this run's is {ours}; they must match")
    return source.model.state_dict()


def log_epoch(run: Run, epoch: int, step_log: StepLog, test_loss: float, test_accuracy: float) -> None:
    loss_sum, correct, count = step_log.take().sum(0).tolist()
    run.log({"epoch": epoch, "train_loss": loss_sum / count, "train_accuracy": correct / count,
             "test_loss": test_loss, "test_accuracy": test_accuracy})


def stop_reason(config: PalindromeConfig, run: Run) -> str | None:
    """Why training may stop before max_epoch: solved (--patience) or stalled (--give-up), read off metrics."""
    accuracy = run.metric_column("test_accuracy")
    at_full = next((k for k, a in enumerate(reversed(accuracy)) if a < config.target_accuracy), len(accuracy))
    since_best = len(accuracy) - 1 - accuracy.index(max(accuracy)) if accuracy else 0
    if at_full >= config.patience > 0:
        return "solved"
    if since_best >= config.give_up > 0:
        return "stalled"
    return None


def summarize(run: Run, config: PalindromeConfig, stopped_early: str | None, where: Progress) -> dict:
    test_acc = run.metric_column("test_accuracy")
    full = [row["epoch"] for row in run.rows if row["test_accuracy"] == 1.0]
    best = max(range(len(test_acc)), key=lambda k: test_acc[k]) if test_acc else None
    return {
        "model": config.model, "input_length": config.input_length, "seed": config.seed,
        "epochs": len(test_acc),
        "final_test_accuracy": test_acc[-1] if test_acc else None,
        "best_test_accuracy": test_acc[best] if test_acc else None,
        "best_epoch": run.rows[best]["epoch"] if test_acc else None,
        "first_full_epoch": full[0] if full else None,
        "final_train_accuracy": run.rows[-1]["train_accuracy"] if test_acc else None,
        "stopped_early": stopped_early,
        "steps": where.iteration,
        "wall_time_s": round(where.seconds, 1),
        "cpu_time_s": round(where.cpu_seconds, 1),          # process CPU seconds, summed over the run's pieces
        "pieces": where.pieces,
        "run": str(run.path),
    }


def plot_curves(run: Run, config: PalindromeConfig) -> None:
    if not run.rows:
        return
    epochs = run.metric_column("epoch")
    line_plot(run.path / "curves.png", [
        {"series": {"train": (epochs, run.metric_column("train_loss")),
                    "test": (epochs, run.metric_column("test_loss"))},
         "xlabel": "epoch", "ylabel": "cross-entropy", "title": "loss"},
        {"series": {"train": (epochs, run.metric_column("train_accuracy")),
                    "test": (epochs, run.metric_column("test_accuracy"))},
         "xlabel": "epoch", "ylabel": "accuracy", "title": "accuracy", "ylim": (0, 1.02)},
    ], title=f"{model_spec(config.model).title} on palindromes, T = {config.input_length}")

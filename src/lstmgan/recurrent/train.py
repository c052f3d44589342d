"""Training and evaluating palindrome classifiers (LSTM or vanilla RNN)."""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from ..checkpoint import load_state
from ..devices import resolve_device
from ..errors import TrainingInterrupted, UsageError
from ..plots import line_plot
from ..runs import Run, atomic_write_text, resolve_config
from ..seeding import epoch_order, seed_everything
from ..signals import StopRequest
from ..training import StepLog, assert_finite_parameters, progress_bar
from .lstm import LSTM
from .palindrome import DataSizeWarning, PalindromeDataset, make_palindrome_splits, num_palindromes, random_palindromes
from .rnn import VanillaRNN

KIND = "palindrome"
MODELS = {"lstm": LSTM, "rnn": VanillaRNN}
# flags that may change when a run is resumed: they set how long it runs, not what it computes
BUDGET_KEYS = {"max_epoch", "patience", "give_up", "device"}


@dataclass
class PalindromeConfig:
    """One palindrome training run; defaults are the seed's configuration table."""

    model: str = "lstm"
    input_length: int = 5
    input_dim: int = 1
    num_classes: int = 10
    num_hidden: int = 128
    batch_size: int = 100
    learning_rate: float = 0.001
    max_epoch: int = 100
    max_norm: float = 10.0
    data_size: int = 100000
    portion_train: float = 0.8
    seed: int = 0
    device: str = "auto"
    patience: int = 0              # stop once test accuracy has stayed at 100% this many epochs (0: never)
    give_up: int = 0               # stop once the best test accuracy has not improved for this many epochs (0: never)
    # constant init of the LSTM's b_f; None: uniform like torch (the seed). 3.0 makes σ(b_f)^34 ≈ 0.17,
    # so the first digit's gradient survives T = 35 steps (docs/palindrome.md shows before/after).
    # "chrono" / "chrono:N": chrono init with T_max = the input length / N.
    forget_bias: float | str | None = 3.0
    init_from: str | None = None   # start from this palindrome checkpoint's weights (a curriculum over T)

    def validate(self) -> "PalindromeConfig":
        def need(ok: bool, flag: str, rule: str, value):
            if not ok:
                raise UsageError(f"--{flag} must be {rule} (got {value!r})")

        need(self.model in MODELS, "model", "one of " + ", ".join(MODELS), self.model)
        for name in ("input_length", "num_hidden", "batch_size", "max_epoch", "data_size"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, name.replace("_", "-"), "a positive integer", value)
        need(isinstance(self.num_classes, int) and self.num_classes >= 2, "num-classes", "an integer >= 2",
             self.num_classes)
        need(self.input_dim in (1, self.num_classes), "input-dim",
             f"1 (digit values) or --num-classes {self.num_classes} (one-hot)", self.input_dim)
        need(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning-rate", "positive",
             self.learning_rate)
        need(math.isfinite(self.max_norm) and self.max_norm > 0, "max-norm", "positive", self.max_norm)
        need(0 < self.portion_train < 1, "portion-train", "strictly between 0 and 1", self.portion_train)
        need(self.patience >= 0, "patience", "0 (off) or a positive number of epochs", self.patience)
        need(self.give_up >= 0, "give-up", "0 (off) or a positive number of epochs", self.give_up)
        if isinstance(self.forget_bias, str):
            need(chrono_tmax(self.forget_bias, self.input_length) is not None, "forget-bias",
                 "a number, 'uniform', 'chrono' or 'chrono:N' with an integer N >= 2", self.forget_bias)
        else:
            need(self.forget_bias is None or math.isfinite(self.forget_bias), "forget-bias", "a finite number",
                 self.forget_bias)
        n = min(self.data_size, num_palindromes(self.input_length, self.num_classes))
        n_train = round(n * self.portion_train)
        need(0 < n_train < n, "portion-train", f"large and small enough that {n} sequences split into two "
             "non-empty sets", self.portion_train)
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "PalindromeConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def chrono_tmax(forget_bias: str, input_length: int) -> int | None:
    """T_max of a 'chrono' / 'chrono:N' forget-bias setting (the input length by default); None if malformed."""
    name, _, tmax = forget_bias.strip().lower().partition(":")
    if name != "chrono":
        return None
    if not tmax:
        return max(2, input_length)
    return int(tmax) if tmax.isdigit() and int(tmax) >= 2 else None


def build_model(config: PalindromeConfig) -> torch.nn.Module:
    if config.model == "lstm":
        if isinstance(config.forget_bias, str):
            return LSTM(config.input_dim, config.num_hidden, config.num_classes,
                        chrono_tmax=chrono_tmax(config.forget_bias, config.input_length))
        return LSTM(config.input_dim, config.num_hidden, config.num_classes, forget_bias=config.forget_bias)
    return VanillaRNN(config.input_dim, config.num_hidden, config.num_classes)


def model_from_checkpoint(data: dict, path) -> torch.nn.Module:
    """The classifier stored in a validated palindrome checkpoint dict."""
    try:
        config = PalindromeConfig.from_dict(data["config"]).validate()
    except (TypeError, UsageError) as error:
        raise UsageError(f"{path}: checkpoint config is invalid ({error})") from None
    model = build_model(config)
    load_state(model, data["model"], path)
    return model


def load_initial_weights(model: torch.nn.Module, config: PalindromeConfig) -> None:
    """Start from another palindrome run's weights (any input length; the same network shape)."""
    from ..checkpoint import load_checkpoint

    source = load_checkpoint(config.init_from, kind=KIND)
    for key in ("model", "input_dim", "num_hidden", "num_classes"):
        theirs = source.config.get(key)
        if theirs != getattr(config, key):
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"--init-from {config.init_from}: its {flag} is {theirs}, this run's is "
                             f"{getattr(config, key)}; they must match")
    model.load_state_dict(source.model.state_dict())


def train_step(model, optimizer, x, y, max_norm: float):
    """One Adam step on cross-entropy of the logits; returns (loss, number correct) as tensors."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


@torch.no_grad()
def evaluate(model, dataset: PalindromeDataset, batch_size: int = 2000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a dataset, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for index in torch.arange(len(dataset), device=dataset.sequences.device).split(batch_size):
        x, y = dataset.batch(index)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    return loss_sum / len(dataset), correct / len(dataset)


@dataclass
class Position:
    """Where a run stands: the next epoch and step to run, and the patience count."""

    epoch: int = 1
    step: int = 0
    global_step: int = 0
    epochs_at_full: int = 0
    epochs_since_best: int = 0
    seconds: float = 0.0           # training wall time so far, over all resumes


def train(config: PalindromeConfig | dict, out, resume: bool = False, progress: bool = True) -> dict:
    """Train one model on palindromes; writes the run directory `out` and returns its summary."""
    run = Run(out)
    run.check_can_start(resume)
    config = resolve_config(PalindromeConfig, config, out, resume, KIND, BUDGET_KEYS)
    device = resolve_device(config.device)
    state = run.resume_state(KIND) if resume else None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataSizeWarning)
        train_set, test_set = make_palindrome_splits(config.input_length, config.data_size, config.portion_train,
                                                     config.input_dim, config.seed, config.num_classes)
    if caught and not resume:
        warnings.warn(str(caught[0].message), DataSizeWarning, stacklevel=2)
    train_set.sequences, test_set.sequences = train_set.sequences.to(device), test_set.sequences.to(device)

    seed_everything(config.seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    step_log = StepLog(["loss_sum", "correct", "count"], steps_per_epoch, device)
    pos = Position()
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        pos = Position(**state["progress"])
        step_log.load_state(state["step_log"])
        torch.set_rng_state(state["rng"]["torch"])
    elif config.init_from:
        load_initial_weights(model, config)
    run.start(asdict(config) | {"resolved_device": str(device), "train_size": len(train_set),
                                "test_size": len(test_set)})

    def save(*snapshots: str) -> None:
        step_log.check()
        assert_finite_parameters(model, where=f"at epoch {pos.epoch}, step {pos.step}")
        run.save_checkpoint(KIND, asdict(config), snapshots, model=model.state_dict(),
                            optimizer=optimizer.state_dict(), progress=asdict(pos), step_log=step_log.state(),
                            rng={"torch": torch.get_rng_state()})

    bar = progress_bar(config.max_epoch * steps_per_epoch, (pos.epoch - 1) * steps_per_epoch + pos.step,
                       f"{config.model} T={config.input_length}", progress)
    stopped_early = stop_reason(config, pos)
    clock = time.perf_counter() - pos.seconds
    with StopRequest() as stop, bar:
        while pos.epoch <= config.max_epoch and not stopped_early:
            batches = epoch_order(config.seed, pos.epoch, len(train_set)).to(device).split(config.batch_size)
            while pos.step < len(batches):
                x, y = train_set.batch(batches[pos.step])
                loss, correct = train_step(model, optimizer, x, y, config.max_norm)
                pos.step, pos.global_step = pos.step + 1, pos.global_step + 1
                step_log.add(pos.global_step, loss * len(y), correct, len(y))
                bar.update()
                if stop.requested:
                    pos.seconds = time.perf_counter() - clock
                    save()
                    raise TrainingInterrupted(
                        f"interrupted at epoch {pos.epoch}, step {pos.step}; checkpoint saved. "
                        f"Resume with: lstmgan palindrome train --out {run.path} --resume", stop.signal_number)
            loss_sum, correct, count = step_log.take().sum(0).tolist()
            test_loss, test_acc = evaluate(model, test_set)
            run.log({"epoch": pos.epoch, "train_loss": loss_sum / count, "train_accuracy": correct / count,
                     "test_loss": test_loss, "test_accuracy": test_acc})
            best = test_acc > max(run.metric_column("test_accuracy")[:-1], default=-1.0)
            pos.epochs_at_full = pos.epochs_at_full + 1 if test_acc == 1.0 else 0
            pos.epochs_since_best = 0 if best else pos.epochs_since_best + 1
            stopped_early = stop_reason(config, pos)
            pos.epoch, pos.step = pos.epoch + 1, 0
            pos.seconds = time.perf_counter() - clock
            save(*(("best",) if best else ()))
            bar.set_postfix(epoch=pos.epoch - 1, train_acc=f"{correct / count:.3f}", test_acc=f"{test_acc:.3f}")
    summary = summarize(run, config, stopped_early) | {"steps": pos.global_step,
                                                       "wall_time_s": round(pos.seconds, 1)}
    plot_curves(run, config)
    atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def stop_reason(config: PalindromeConfig, pos: Position) -> str | None:
    """Why training may stop before max_epoch: solved (--patience) or stalled (--give-up)."""
    if pos.epochs_at_full >= config.patience > 0:
        return "solved"
    if pos.epochs_since_best >= config.give_up > 0:
        return "stalled"
    return None


def summarize(run: Run, config: PalindromeConfig, stopped_early: str | None) -> dict:
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
    ], title=f"{config.model.upper()} on palindromes, T = {config.input_length}")


def evaluate_checkpoint(path, n: int = 10000, seed: int = 12345, device: str = "auto") -> dict:
    """Score a checkpoint on `n` freshly generated palindromes of its input length."""
    from ..checkpoint import load_checkpoint

    if n < 1:
        raise UsageError(f"--n must be a positive integer (got {n})")
    loaded = load_checkpoint(path, resolve_device(device), kind=KIND)
    config = PalindromeConfig.from_dict(loaded.config)
    n = min(n, num_palindromes(config.input_length, config.num_classes))
    sequences = random_palindromes(n, config.input_length, config.num_classes, seed=seed)
    dataset = PalindromeDataset(sequences.to(resolve_device(device)), config.input_dim, config.num_classes)
    loss, accuracy = evaluate(loaded.model, dataset)
    return {"checkpoint": str(loaded.path), "model": config.model, "input_length": config.input_length,
            "n": n, "seed": seed, "accuracy": accuracy, "loss": loss}

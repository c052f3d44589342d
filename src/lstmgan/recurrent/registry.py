"""The models of Part I, by name: the one place that knows which models exist.

Everything else asks the registry: the CLI's `--model` / `--models` choices and help, config
validation (which model-specific options and backends a model takes), building a model from
a config or a checkpoint, the backend recorded in config.json, and the sweep's tables.

Adding a model is one file (the `nn.Module`: `model(x)` -> logits for x [B, T, input_dim], or
[B, T] when input_dim == 1) plus one `register_model(...)` line at the end of this file; a
model registered from anywhere else (a test, a notebook) works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..errors import UsageError
from .gru import GRU
from .lru import LRU
from .lstm import LSTM, chrono_tmax
from .rnn import VanillaRNN
from .transformer import Transformer

RECURRENCE_BACKENDS = ("compiled", "eager", "per-gate")


@dataclass(frozen=True)
class ModelSpec:
    """What Part I needs to know about one model.

    `build(config)` returns a freshly initialised model (from torch's global RNG) for a
    PalindromeConfig. `options`: the model-specific config options it reads (see
    `config.MODEL_OPTIONS`); any other model-specific option must keep its default.
    `backends`: its implementations, fastest first ("compiled" means the C++ kernel; a model
    without alternatives lists just "eager"); `--backend auto` picks the first that runs.
    `check(config)`: an error message for option values the model cannot take, else None.
    """

    name: str
    title: str
    build: Callable[[Any], nn.Module]
    options: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("eager",)
    from_torch: Callable[..., nn.Module] | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def has_kernel(self) -> bool:
        return "compiled" in self.backends


REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model under `spec.name`."""
    REGISTRY[spec.name] = spec
    return spec


def model_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def model_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise UsageError(f"--model must be one of {', '.join(REGISTRY)} (got {name!r})")
    return REGISTRY[name]


def build_model(config) -> nn.Module:
    """The model a PalindromeConfig describes, freshly initialised."""
    return model_spec(config.model).build(config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- the models

def _transformer_check(c) -> str | None:
    if c.num_hidden % c.num_heads:
        return f"--num-hidden {c.num_hidden} must be a multiple of --num-heads {c.num_heads} for the transformer"
    if c.position == "rope" and (c.num_hidden // c.num_heads) % 2:
        return (f"--position rope rotates pairs: --num-hidden / --num-heads must be even "
                f"(got {c.num_hidden // c.num_heads})")
    return None


def _lstm(c) -> LSTM:
    chrono = chrono_tmax(c.forget_bias, c.input_length) if isinstance(c.forget_bias, str) else None
    return LSTM(c.input_dim, c.num_hidden, c.num_classes, forget_bias=None if chrono else c.forget_bias,
                backend=c.backend, chrono_tmax=chrono, bptt_segment=c.resolved_bptt_segment())


register_model(ModelSpec("lstm", "LSTM", _lstm, ("forget_bias", "bptt_segment"), RECURRENCE_BACKENDS,
                         LSTM.from_torch))
register_model(ModelSpec("rnn", "RNN", lambda c: VanillaRNN(c.input_dim, c.num_hidden, c.num_classes, c.backend),
                         (), RECURRENCE_BACKENDS, VanillaRNN.from_torch))
register_model(ModelSpec("gru", "GRU", lambda c: GRU(c.input_dim, c.num_hidden, c.num_classes, c.backend),
                         (), ("eager", "per-gate"), GRU.from_torch))
register_model(ModelSpec("transformer", "Transformer", lambda c: Transformer(
    c.input_dim, c.num_hidden, c.num_classes, c.num_layers, c.num_heads, c.position),
    ("num_layers", "num_heads", "position"), check=_transformer_check))
register_model(ModelSpec("lru", "LRU", lambda c: LRU(c.input_dim, c.num_hidden, c.num_classes, c.num_layers),
                         ("num_layers",)))

"""The models of Part I, by name: the one place that knows which models exist and what each can do.

Everything else asks the registry: the CLI's `--model` choices and help, the config's model-specific
options (declared here, in the entry of each model that reads them) and their validation, building a
model from a config or a checkpoint, which options shape the weights (`--init-from`), the backends,
whether `palindrome inspect` has states to draw, and the sweep's tables.

Adding a model is one file (the `nn.Module`: `model(x)` -> logits for x [B, T, input_dim], or
[B, T] when input_dim == 1) plus one `register_model(...)` entry at the end of this file; a
model registered from anywhere else (a test, a notebook), with options of its own, works the same way.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import Field, dataclass, field
from typing import Any, Callable

from torch import nn

from ..config import COUNT, POSITIVE, POSITIVE_INT, Rule, named_option, one_of
from ..registry import Registry
from . import flops
from .backends import COMPILED, EAGER, IMPLEMENTATIONS, PER_GATE
from .flops import StepFlops
from .gru import GRU
from .lru import LRU, check_ring
from .lstm import LSTM, chrono_tmax
from .rnn import VanillaRNN
from .transformer import ATTENTIONS, POSITIONS, Transformer


@dataclass(frozen=True)
class ModelSpec:
    """What Part I needs to know about one model.

    `build(config)`: a freshly initialised model (from torch's global RNG) for a PalindromeConfig.
    `options`: the model-specific options it reads, declared with `named_option` (the same declaration may
    serve several models); every other model keeps their defaults. `backends`: its implementations,
    fastest first ("compiled" means the C++ kernel); `--backend auto` picks the first that runs.
    `check(config)`: an error message for option values the model cannot take, else None.
    `from_torch(module, head)`: the model from torch's own module of the same recurrence, if there is one.
    What `palindrome inspect` can show: `memory_state`, the name of the state that carries the digit in
    `model.states(x)` (None: the model has no states to show), `gates`, its gates there, `traced_gates`, those
    drawn beside the state (the ones that keep or write the memory), and `forget_gate`, (the gate, the model's
    bias parameter of it) for a forget-gate summary, if the model has one.
    `segment_option`: the option that sets checkpointed BPTT, if the model can be segmented.
    `parameter_groups(model, config)`: optimizer groups with their own learning-rate factor, if any.
    `flops(config)`: the training FLOPs of one step (forward and backward, the config's batch and T) as a
    `flops.StepFlops`, by the conventions of flops.py (the same for every model).
    """

    name: str
    title: str
    build: Callable[[Any], nn.Module]
    options: tuple[Field, ...] = ()
    backends: tuple[str, ...] = (EAGER,)
    from_torch: Callable[..., nn.Module] | None = None
    check: Callable[[Any], str | None] | None = None
    memory_state: str | None = None
    gates: tuple[str, ...] = ()
    traced_gates: tuple[str, ...] = ()
    forget_gate: tuple[str, str] | None = None
    in_seed_study: bool = False     # one of the models the seed's study compares (`palindrome sweep`'s default)
    segment_option: str | None = None
    parameter_groups: Callable[[nn.Module, Any], list[dict]] | None = None
    flops: Callable[[Any], StepFlops] = field(kw_only=True)     # required: every model states its cost

    @property
    def has_kernel(self) -> bool:
        return COMPILED in self.backends

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)


REGISTRY: Registry[ModelSpec] = Registry("--model")


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a model under `spec.name`. An option another model declares too must be the same
    declaration (one flag, one default, one rule)."""
    return REGISTRY.register(spec)


def model_names() -> tuple[str, ...]:
    return REGISTRY.names()


def seed_study_models() -> list[str]:
    """The models the seed's study compares: what `palindrome sweep` trains unless told otherwise."""
    return [spec.name for spec in REGISTRY.values() if spec.in_seed_study]


def model_spec(name: str) -> ModelSpec:
    return REGISTRY.entry(name)


def model_options() -> dict[str, Field]:
    """Every registered model-specific option, once, in the order the models declare them."""
    return REGISTRY.options()


def models_taking(option: str) -> list[str]:
    return REGISTRY.taking(option)


def build_model(config) -> nn.Module:
    """The model a PalindromeConfig describes, freshly initialised."""
    return model_spec(config.model).build(config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- options that belong to some models

def forget_bias_value(text: str):
    """--forget-bias: a number, 'uniform' (torch's init, stored as None), or 'chrono' / 'chrono:N'."""
    word = text.strip().lower()
    if word in ("uniform", "none"):
        return None
    if word.startswith("chrono"):
        if chrono_tmax(word, 2) is None:
            raise argparse.ArgumentTypeError(f"chrono init needs 'chrono' or 'chrono:N' with an integer N >= 2, "
                                             f"got {text!r}")
        return word
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'uniform' or 'chrono[:N]', got {text!r}") from None


def forget_bias_init(config) -> dict:
    """The constructor arguments of a --forget-bias setting: a constant bias, or chrono's T_max."""
    chrono = chrono_tmax(config.forget_bias, config.input_length) if isinstance(config.forget_bias, str) else None
    return {"forget_bias": None if chrono else config.forget_bias, "chrono_tmax": chrono}


AUTO_SEGMENT_FROM = 1000   # --bptt-segment 0 checkpoints from this T on (below it the recompute costs more than
                           # the memory is worth: 1.8-2.2x a step at T = 35-100, 1.25x at T >= 1000)


def bptt_segment(setting: int, input_length: int) -> int | None:
    """The checkpointed-BPTT segment k of a --bptt-segment setting: 0 is auto (⌈√T⌉ from T = 1000 on,
    else None: every state kept); k >= T keeps every state too."""
    k = setting or (math.ceil(math.sqrt(input_length)) if input_length >= AUTO_SEGMENT_FROM else None)
    return k if k and k < input_length else None


FORGET_BIAS = named_option(
    "forget_bias", 3.0,
    # 3.0 makes σ(b_f)^34 ≈ 0.17, so the first digit's gradient survives T = 35 steps (docs/palindrome.md)
    "forget-gate bias init (the GRU's update gate: the share of the old state kept): a number, 'uniform' as "
    "torch (the seed), or 'chrono' / 'chrono:N' (chrono init, Tallec & Ollivier 2018, with T_max the input "
    "length or N)",
    Rule(lambda v: v is None or (isinstance(v, str) and chrono_tmax(v, 2) is not None)
         or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
         "a number, 'uniform', 'chrono' or 'chrono:N' with an integer N >= 2"),
    parse=forget_bias_value, metavar="BIAS", short="fb")
BPTT_SEGMENT = named_option(
    "bptt_segment", 0, "compiled backend: checkpointed backpropagation through time keeps the state every K steps "
                       "and recomputes the rest (less memory, one more forward); 0: auto, ⌈√T⌉ from T = 1000 on, "
                       "every state below", COUNT, changeable=True, metavar="K")
NUM_LAYERS = named_option("num_layers", 2, "layers (blocks)", POSITIVE_INT, architecture=True, short="L")
NUM_HEADS = named_option("num_heads", 4, "attention heads (they split --num-hidden)", POSITIVE_INT,
                         architecture=True, short="nh")
POSITION = named_option("position", "sinusoidal", "position encoding: sinusoidal (absolute), rope (relative, "
                                                  "rotary), random (randomised positions, Ruoss et al. 2023: "
                                                  "training positions are a sorted sample of range(--position-range)) "
                                                  "or none (needs --attention causal)", one_of(*POSITIONS),
                        architecture=True, short="pos")
ATTENTION = named_option("attention", "full", "full (every position sees every other) or causal (position t sees "
                                              "1..t; the read-out at T sees all)", one_of(*ATTENTIONS),
                         architecture=True, short="att")
POSITION_RANGE = named_option("position_range", 4096, "--position random: positions are drawn from 0..N-1 (the "
                                                      "longest input it can read)", POSITIVE_INT, architecture=True,
                              short="pr", metavar="N")
UNIT_INTERVAL = Rule(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1, "in [0, 1)")
LRU_R_MIN = named_option("lru_r_min", 0.9, "the ring's inner radius at init: every |λ| >= R", UNIT_INTERVAL,
                         short="rmin", metavar="R")
LRU_R_MAX = named_option("lru_r_max", 0.999, "the ring's outer radius at init: every |λ| <= R < 1", UNIT_INTERVAL,
                         short="rmax", metavar="R")
LRU_MAX_PHASE = named_option("lru_max_phase", 2 * math.pi, "every arg λ in [0, P] at init (radians)", POSITIVE,
                             short="ph", metavar="P")
LRU_STATE = named_option("lru_state", 0, "complex state units N per layer (0: --num-hidden)", COUNT,
                         architecture=True, short="N", metavar="N")
LRU_LR_FACTOR = named_option("lru_lr_factor", 1.0, "the recurrence's own parameters (ν, θ, γ, B) learn at this "
                                                   "factor times --learning-rate (the paper: below 1)", POSITIVE,
                             short="lrf", metavar="F")


# ---------------------------------------------------------------- the models

def _transformer_check(c) -> str | None:
    if c.position == "none" and c.attention == "full":
        return ("--position none with --attention full sees the input as a set (no order): use --attention causal "
                "or a position encoding")
    if c.position_range != POSITION_RANGE.default and c.position != "random":
        return "--position-range applies to --position random"
    if c.position == "random" and c.input_length > c.position_range:
        return f"--input-length {c.input_length} exceeds --position-range {c.position_range}"
    if c.num_hidden % c.num_heads:
        return f"--num-hidden {c.num_hidden} must be a multiple of --num-heads {c.num_heads} for the transformer"
    if c.position == "rope" and (c.num_hidden // c.num_heads) % 2:
        return (f"--position rope rotates pairs: --num-hidden / --num-heads must be even "
                f"(got {c.num_hidden // c.num_heads})")
    return None


def _lru_check(c) -> str | None:
    try:
        check_ring(c.lru_r_min, c.lru_r_max, c.lru_max_phase)
    except ValueError as error:
        return f"--lru-r-min {c.lru_r_min}, --lru-r-max {c.lru_r_max}, --lru-max-phase {c.lru_max_phase}: {error}"
    return None


def _lru_groups(model: LRU, c) -> list[dict]:
    """The recurrence's own parameters at --lru-lr-factor times the learning rate (the paper's reduced rate)."""
    if c.lru_lr_factor == 1.0:
        return [{"params": list(model.parameters())}]            # one group: earlier runs repeat exactly
    slow = {id(p) for p in model.recurrence_parameters()}
    return [{"params": [p for p in model.parameters() if id(p) not in slow]},
            {"params": model.recurrence_parameters(), "lr": c.learning_rate * c.lru_lr_factor}]


def _lstm(c) -> LSTM:
    return LSTM(c.input_dim, c.num_hidden, c.num_classes, backend=c.backend,
                bptt_segment=bptt_segment(c.bptt_segment, c.input_length), **forget_bias_init(c))


register_model(ModelSpec("lstm", "LSTM", _lstm, (FORGET_BIAS, BPTT_SEGMENT), IMPLEMENTATIONS, LSTM.from_torch,
                         memory_state="c", gates=("i", "f", "o"), traced_gates=("f", "i"), forget_gate=("f", "b_f"),
                         segment_option="bptt_segment", in_seed_study=True, flops=flops.lstm))
register_model(ModelSpec("rnn", "RNN", lambda c: VanillaRNN(c.input_dim, c.num_hidden, c.num_classes, c.backend),
                         (), IMPLEMENTATIONS, VanillaRNN.from_torch, memory_state="h",
                         in_seed_study=True, flops=flops.rnn))
def _gru(c) -> GRU:
    init = forget_bias_init(c)          # on the update gate z, the share of the old state kept
    return GRU(c.input_dim, c.num_hidden, c.num_classes, c.backend, update_bias=init["forget_bias"],
               chrono_tmax=init["chrono_tmax"])


register_model(ModelSpec("gru", "GRU", _gru, (FORGET_BIAS,), (EAGER, PER_GATE), GRU.from_torch,
                         memory_state="h", gates=("r", "z"), traced_gates=("z",), flops=flops.gru))
register_model(ModelSpec("transformer", "Transformer", lambda c: Transformer(
    c.input_dim, c.num_hidden, c.num_classes, c.num_layers, c.num_heads, c.position, c.attention, c.position_range),
    (NUM_LAYERS, NUM_HEADS, POSITION, ATTENTION, POSITION_RANGE), check=_transformer_check,
    flops=flops.transformer))
register_model(ModelSpec("lru", "LRU", lambda c: LRU(
    c.input_dim, c.num_hidden, c.num_classes, c.num_layers, state_dim=c.lru_state or None, r_min=c.lru_r_min,
    r_max=c.lru_r_max, max_phase=c.lru_max_phase),
    (NUM_LAYERS, LRU_R_MIN, LRU_R_MAX, LRU_MAX_PHASE, LRU_STATE, LRU_LR_FACTOR), check=_lru_check,
    parameter_groups=_lru_groups, flops=flops.lru))

"""The configuration of one palindrome run; defaults are the seed's configuration table."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from ..config import (
    BOOLEAN,
    COUNT,
    INTEGER,
    OPEN_FRACTION,
    OPTIONAL_TEXT,
    POSITIVE,
    POSITIVE_INT,
    Config,
    Rule,
    flag_name,
    one_of,
    option,
)
from ..errors import UsageError
from .lstm import chrono_tmax
from .palindrome import num_palindromes
from .registry import REGISTRY, model_names

BACKENDS = ("auto", "compiled", "eager", "per-gate")
POSITIONS = ("sinusoidal", "rope", "none")
# options only some models read (each model's registry entry lists its own); the others keep their defaults
MODEL_OPTIONS = ("forget_bias", "bptt_segment", "num_layers", "num_heads", "position")
AUTO_SEGMENT_FROM = 1000   # --bptt-segment 0 checkpoints from this T on (below it the recompute costs more than
                           # the memory is worth: 1.8-2.2x a step at T = 35-100, 1.25x at T >= 1000)


def bptt_segment(setting: int, input_length: int) -> int | None:
    """The checkpointed-BPTT segment k of a --bptt-segment setting: 0 is auto (⌈√T⌉ from T = 1000 on,
    else None: every state kept); k >= T keeps every state too."""
    k = setting or (math.ceil(math.sqrt(input_length)) if input_length >= AUTO_SEGMENT_FROM else None)
    return k if k and k < input_length else None


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


UNIT_FRACTION = Rule(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1, "in (0, 1]")
FORGET_BIAS = Rule(lambda v: v is None or (isinstance(v, str) and chrono_tmax(v, 2) is not None)
                   or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
                   "a number, 'uniform', 'chrono' or 'chrono:N' with an integer N >= 2")


@dataclass
class PalindromeConfig(Config):
    """One palindrome training run (LSTM or vanilla RNN)."""

    kind = "palindrome"
    derived_keys = ("resolved_device", "resolved_backend", "resolved_bptt_segment", "train_size", "test_size")

    model: str = option("lstm", "the model: " + ", ".join(model_names()), Rule(lambda v: isinstance(v, str), "a name"),
                        metavar="{" + ",".join(model_names()) + "}")
    input_length: int = option(5, "T: digits read before the one to predict", POSITIVE_INT, metavar="T")
    input_dim: int = option(1, "1 (digit values) or --num-classes (one-hot)", POSITIVE_INT)
    num_classes: int = option(10, "digits 0..N-1", POSITIVE_INT, metavar="N")
    num_hidden: int = option(128, "hidden units", POSITIVE_INT)
    batch_size: int = option(100, "sequences per training step", POSITIVE_INT)
    learning_rate: float = option(0.001, "Adam learning rate", POSITIVE, metavar="LR")
    max_epoch: int = option(100, "epochs at most", POSITIVE_INT, changeable=True)
    max_norm: float = option(10.0, "gradient-norm clipping", POSITIVE)
    data_size: int = option(100000, "distinct palindromes drawn (all of them if fewer exist)", POSITIVE_INT)
    portion_train: float = option(0.8, "share of the data used for training; the rest is the test split",
                                  OPEN_FRACTION, metavar="P")
    seed: int = option(0, "seed of the data, the init and the batch order", INTEGER)
    device: str = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps", changeable=True)
    patience: int = option(0, "stop once test accuracy has stayed at --target-accuracy this many epochs (0: never)",
                           COUNT, changeable=True, metavar="EPOCHS")
    target_accuracy: float = option(1.0, "the test accuracy --patience waits for", UNIT_FRACTION, changeable=True,
                                    metavar="ACC")
    give_up: int = option(0, "stop once the best test accuracy has not improved for this many epochs (0: never)",
                          COUNT, changeable=True, metavar="EPOCHS")
    # 3.0 makes σ(b_f)^34 ≈ 0.17, so the first digit's gradient survives T = 35 steps
    # (docs/palindrome.md shows the seed's uniform init against it)
    forget_bias: float | str | None = option(
        3.0, "LSTM forget-gate bias init: a number, 'uniform' as torch (the seed), or 'chrono' / 'chrono:N' "
             "(chrono init, Tallec & Ollivier 2018, with T_max the input length or N)", FORGET_BIAS,
        parse=forget_bias_value, metavar="BIAS")
    init_from: str | None = option(None, "start from this palindrome checkpoint's weights (e.g. a shorter T: "
                                         "a curriculum)", OPTIONAL_TEXT, metavar="CHECKPOINT")
    bptt_segment: int = option(0, "LSTM, compiled backend: checkpointed backpropagation through time keeps the "
                                  "state every K steps and recomputes the rest (less memory, one more forward); "
                                  "0: auto, ⌈√T⌉ from T = 1000 on, every state below", COUNT, changeable=True,
                               metavar="K")
    backend: str = option("auto", "recurrence implementation: auto (compiled on CPU where it builds, else eager), "
                                  "compiled (C++ kernel), eager (fused, hand-written BPTT) or per-gate (autograd); "
                                  "models take those their registry entry lists",
                          one_of(*BACKENDS), changeable=True)
    num_layers: int = option(2, "transformer, lru: layers (blocks)", POSITIVE_INT)
    num_heads: int = option(4, "transformer: attention heads (they split --num-hidden)", POSITIVE_INT)
    position: str = option("sinusoidal", "transformer: position encoding, sinusoidal (absolute), rope (relative, "
                                         "rotary) or none", one_of(*POSITIONS))
    tensorboard: bool = option(False, "also write TensorBoard event files (pip install 'lstmgan[tensorboard]')",
                               BOOLEAN, changeable=True)

    def check(self) -> None:
        self.check_model()
        self.need(self.num_classes >= 2, "num_classes", "an integer >= 2")
        self.need(self.input_dim in (1, self.num_classes), "input_dim",
                  f"1 (digit values) or --num-classes {self.num_classes} (one-hot)")
        n = min(self.data_size, num_palindromes(self.input_length, self.num_classes))
        n_train = round(n * self.portion_train)
        self.need(0 < n_train < n, "portion_train",
                  f"large and small enough that {n} sequences split into two non-empty sets")

    def resolved_bptt_segment(self) -> int | None:
        """The LSTM's checkpointed-BPTT segment for this run's T (None: every state kept)."""
        return bptt_segment(self.bptt_segment, self.input_length)

    def check_model(self) -> None:
        """The model exists, and takes the model-specific options and the backend given."""
        self.need(self.model in REGISTRY, "model", "one of " + ", ".join(REGISTRY))
        spec, defaults = REGISTRY[self.model], self.defaults()
        for key in MODEL_OPTIONS:
            if key not in spec.options and getattr(self, key) != defaults[key]:
                takes = ", ".join(flag_name(k) for k in spec.options) or "none"
                raise UsageError(f"{flag_name(key)} does not apply to --model {self.model} (its model-specific "
                                 f"options: {takes})")
        if self.backend != "auto" and self.backend not in spec.backends:
            raise UsageError(f"--backend {self.backend}: --model {self.model} has no such backend (it has "
                             f"{', '.join(spec.backends)}; or auto)")
        problem = spec.check(self) if spec.check else None
        if problem:
            raise UsageError(problem)

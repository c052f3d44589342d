"""The configuration of one palindrome run; defaults are the seed's configuration table.

The options every model reads are declared here; the model-specific ones (the LSTM's forget bias,
the transformer's heads, ...) are declared in the registry entries of the models that read them,
and join this class's options from there (`option_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import (
    BOOLEAN,
    COUNT,
    INTEGER,
    OPEN_FRACTION,
    OPTIONAL_TEXT,
    POSITIVE,
    POSITIVE_INT,
    EntryConfig,
    Rule,
    one_of,
    option,
)
from ..devices import DEVICE_HELP
from ..errors import UsageError
from .backends import BACKENDS
from .palindrome import num_palindromes
from .registry import REGISTRY, bptt_segment

UNIT_FRACTION = Rule(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1, "in (0, 1]")


@dataclass(init=False, eq=False)
class PalindromeConfig(EntryConfig):
    """One palindrome training run, of any registered model; the model-specific options join from the models'
    registry entries (`option_fields`)."""

    kind = "palindrome"
    entries = REGISTRY
    entry_key = "model"
    derived_keys = ("resolved_device", "resolved_backend", "resolved_bptt_segment", "train_size", "test_size")

    model: str = option("lstm", "the model", Rule(lambda v: isinstance(v, str), "a name"),
                        architecture=True, short="", title="Model")
    input_length: int = option(5, "T: digits read before the one to predict", POSITIVE_INT, metavar="T", short="T",
                               title="T")
    input_dim: int = option(1, "1 (digit values) or --num-classes (one-hot)", POSITIVE_INT, architecture=True,
                            short="d", title="Input Dim")
    num_classes: int = option(10, "digits 0..N-1", POSITIVE_INT, metavar="N", architecture=True, short="c",
                              title="Classes")
    num_hidden: int = option(128, "hidden units", POSITIVE_INT, architecture=True, short="h", title="Hidden")
    batch_size: int = option(100, "sequences per training step", POSITIVE_INT, short="b", title="Batch")
    learning_rate: float = option(0.001, "Adam learning rate", POSITIVE, metavar="LR", short="lr", title="LR")
    max_epoch: int = option(100, "epochs at most", POSITIVE_INT, changeable=True, short="e", title="Max Epoch")
    max_norm: float = option(10.0, "gradient-norm clipping", POSITIVE, short="mn", title="Max Norm")
    data: str = option("fixed", "training data: fixed (a set of --data-size x --portion-train palindromes, in "
                                "epochs) or fresh (new palindromes at every step from the run's seeded stream, "
                                "never one of the test split's; an epoch is then a count of steps)",
                       one_of("fixed", "fresh"))
    data_size: int = option(100000, "distinct palindromes drawn (all of them if fewer exist)", POSITIVE_INT, short="n",
                            title="Data Size")
    portion_train: float = option(0.8, "share of the data used for training; the rest is the test split",
                                  OPEN_FRACTION, metavar="P", short="pt", title="Portion Train")
    seed: int = option(0, "seed of the data, the init and the batch order", INTEGER, short="s")
    device: str = option("auto", DEVICE_HELP, changeable=True)
    patience: int = option(0, "stop once test accuracy has stayed at --target-accuracy this many epochs (0: never)",
                           COUNT, changeable=True, metavar="EPOCHS", short="p")
    target_accuracy: float = option(1.0, "the test accuracy --patience waits for", UNIT_FRACTION, changeable=True,
                                    metavar="ACC")
    give_up: int = option(0, "stop once the best test accuracy has not improved for this many epochs (0: never)",
                          COUNT, changeable=True, metavar="EPOCHS")
    init_from: str | None = option(None, "start from this palindrome checkpoint's weights (e.g. a shorter T: "
                                         "a curriculum)", OPTIONAL_TEXT, metavar="CHECKPOINT")
    backend: str = option("auto", "recurrence implementation: auto (compiled on CPU where it builds, else eager), "
                                  "compiled (C++ kernel), eager (fused, hand-written BPTT) or per-gate (autograd); "
                                  "models take those their registry entry lists",
                          one_of(*BACKENDS), changeable=True)
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
        """The checkpointed-BPTT segment for this run's T, for a model that can be segmented (None: every
        state kept)."""
        option = REGISTRY[self.model].segment_option if self.model in REGISTRY else None
        return bptt_segment(getattr(self, option), self.input_length) if option else None

    def architecture(self) -> dict:
        """The options that shape the network (a run started from another's weights must match them)."""
        return {f.name: getattr(self, f.name) for f in self.option_fields() if f.metadata.get("architecture")}

    def check_model(self) -> None:
        """The model exists, and takes the model-specific options and the backend given."""
        spec = self.check_entry()
        if self.backend != "auto" and self.backend not in spec.backends:
            raise UsageError(f"--backend {self.backend}: --model {self.model} has no such backend (it has "
                             f"{', '.join(spec.backends)}; or auto)")
        problem = spec.check(self) if spec.check else None
        if problem:
            raise UsageError(problem)

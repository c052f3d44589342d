"""What the explorer page works on: the generators and palindrome models it was started with.

No web framework here: the page's endpoints (app.py) call these, and so do the tests.
Every mistake a user can make on the page is a `UsageError`, which the server answers with 400.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import UsageError
from ..gan import models as gan_models
from ..gan.architectures import DEFAULT_ARCH
from ..gan.sample import lerp, slerp
from ..loading import load_checkpoint
from ..plots import to_uint8
from ..recurrent import models as recurrent_models
from ..recurrent.config import PalindromeConfig
from ..recurrent.inspection import check_inspectable, held_out_analysis, inspect_sequence, inspectable
from ..recurrent.palindrome import encode_digits, random_palindromes
from ..seeding import Stream, random_stream
from ..shipped import PRETRAINED_PREFIX, pretrained_index, weights_dir

GRID_SIZE = 25                 # a 5 x 5 grid, as `lstmgan gan sample` draws by default
GRID_COLUMNS = 5
MAX_LENGTH = 20_000            # the longest sequence the page scores or inspects, whatever the model
LENGTH_RANGE = 2               # a model's range: up to this many times its training length (T = 10,000 holds 20,000)
MAX_SEED = 2**31 - 1


def shipped_metrics() -> dict:
    path = weights_dir() / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def integer(value, name: str, low: int, high: int) -> int:
    """A query parameter as an int in [low, high], or one clear line."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number (got {value!r})") from None
    if not low <= number <= high:
        raise UsageError(f"{name} must be in {low}..{high} (got {number})")
    return number


@dataclass
class Generator:
    """A loaded generator and what the page shows beside it."""

    name: str
    model: torch.nn.Module
    config: dict
    description: str = ""
    metrics: dict = field(default_factory=dict)

    def info(self) -> dict:
        G = self.model
        return {"name": self.name, "description": self.description, "arch": self.config.get("arch", DEFAULT_ARCH),
                "dataset": self.config.get("dataset", "mnist"), "conditional": bool(G.conditional),
                "classes": int(G.num_classes), "clusters": int(G.num_clusters), "latent_dim": int(G.latent_dim),
                "metrics": self.metrics}

    def latents(self, seed: int) -> torch.Tensor:
        """The grid's 25 noise vectors: the ones `lstmgan gan sample --n 25 --seed SEED` draws."""
        return torch.randn(GRID_SIZE, self.model.latent_dim, generator=random_stream(seed, Stream.SAMPLING))

    def conditions(self, cells: torch.Tensor, z: torch.Tensor, digit: int | None,
                   cluster: int | None) -> torch.Tensor | None:
        """One-hot conditions [N, classes] for grid cells `cells` with noise z, or None for a plain generator.

        A cGAN draws `digit` (without one: the digits in turn, cell k drawing k mod 10); a
        cluster-conditioned one draws `cluster`, or the cluster it picks from z itself."""
        G = self.model
        if G.conditional:
            labels = torch.full((len(z),), digit) if digit is not None else cells % G.num_classes
            return torch.nn.functional.one_hot(labels, G.num_classes).float()
        if G.num_clusters:
            labels = torch.full((len(z),), cluster) if cluster is not None else G.cluster_of(z)
            return torch.nn.functional.one_hot(labels, G.num_clusters).float()
        return None

    def check_condition(self, digit: int | None, cluster: int | None) -> None:
        G = self.model
        if digit is not None and not G.conditional:
            raise UsageError(f"{self.name} is not conditioned on the digit; leave the digit out")
        if digit is not None and not 0 <= digit < G.num_classes:
            raise UsageError(f"digit must be in 0..{G.num_classes - 1} (got {digit})")
        if cluster is not None and not G.num_clusters:
            raise UsageError(f"{self.name} has no clusters; leave the cluster out")
        if cluster is not None and not 0 <= cluster < G.num_clusters:
            raise UsageError(f"cluster must be in 0..{G.num_clusters - 1} (got {cluster})")

    @torch.inference_mode()
    def grid(self, seed: int, digit: int | None = None, cluster: int | None = None) -> np.ndarray:
        """uint8 [25, 28, 28]: the grid of `seed`."""
        self.check_condition(digit, cluster)
        z = self.latents(seed)
        return to_uint8(self.model(z, self.conditions(torch.arange(len(z)), z, digit, cluster)))

    @torch.inference_mode()
    def between(self, seed: int, a: int, b: int, t: float, mode: str = "lerp", digit: int | None = None,
                cluster: int | None = None) -> np.ndarray:
        """uint8 [28, 28]: the image a share t of the way from grid cell a to cell b (t = 0: cell a)."""
        self.check_condition(digit, cluster)
        if mode not in ("lerp", "slerp"):
            raise UsageError(f"mode must be lerp or slerp (got {mode!r})")
        if not 0 <= t <= 1:
            raise UsageError(f"t must be in 0..1 (got {t})")
        cells = torch.tensor([a, b])
        z = self.latents(seed)[cells]
        ends = self.conditions(cells, z, digit, cluster)
        share = torch.tensor([float(t)])
        path = (slerp if mode == "slerp" else lerp)(z[0], z[1], share)
        labels = None if ends is None else lerp(ends[0], ends[1], share)   # the two ends' conditions blended
        return to_uint8(self.model(path, labels))[0]


@dataclass
class PalindromeModel:
    """A loaded palindrome classifier, with the held-out analyses of `inspect` kept per length."""

    name: str
    model: torch.nn.Module
    config: PalindromeConfig
    description: str = ""
    metrics: dict = field(default_factory=dict)
    analyses: dict = field(default_factory=dict)

    @property
    def max_length(self) -> int:
        return min(MAX_LENGTH, LENGTH_RANGE * self.config.input_length)

    def info(self) -> dict:
        c = self.config
        return {"name": self.name, "description": self.description, "model": c.model, "num_hidden": c.num_hidden,
                "trained_length": c.input_length, "max_length": self.max_length, "num_classes": c.num_classes,
                "inspectable": inspectable(c.model), "metrics": self.metrics}

    def check_length(self, T: int) -> None:
        if T < 1:
            raise UsageError("the sequence is empty; type at least one digit")
        if T > self.max_length:
            raise UsageError(f"T = {T} is over this model's limit of {self.max_length} digits "
                             f"({self.name} was trained at T = {self.config.input_length})")

    def fresh(self, length: int, seed: int) -> list[int]:
        """A fresh palindrome of `length` + 1 digits (the model reads `length`; the last is the answer)."""
        self.check_length(length)
        return random_palindromes(1, length, self.config.num_classes, seed=seed)[0].tolist()

    def parse(self, text: str) -> torch.Tensor:
        """Typed digits ('30415', or separated by spaces or commas) as a tensor, or one clear line."""
        if not isinstance(text, str):
            raise UsageError("sequence must be a string of digits")
        tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
        digits = tokens if len(tokens) > 1 else list(tokens[0]) if tokens else []
        for token in digits:
            if not token.isascii() or not token.isdigit():
                raise UsageError(f"the sequence may hold only the digits 0-9 (found {token[:12]!r})")
            if int(token) >= self.config.num_classes:
                raise UsageError(f"digit {int(token)} is outside 0-{self.config.num_classes - 1}")
        self.check_length(len(digits))
        return torch.tensor([int(d) for d in digits])

    @torch.inference_mode()
    def predict(self, digits: torch.Tensor) -> dict:
        c = self.config
        probabilities = self.model.predict_proba(encode_digits(digits[None], c.input_dim, c.num_classes))[0]
        return {"length": len(digits), "first_digit": int(digits[0]), "prediction": int(probabilities.argmax()),
                "probabilities": [round(float(p), 6) for p in probabilities]}

    def inspect(self, digits: torch.Tensor, seed: int = 0) -> dict:
        """`palindrome inspect`'s numbers for this sequence; the held-out carriers are found once per length."""
        check_inspectable(self.config, self.name)
        T = len(digits)
        if T not in self.analyses:
            self.analyses[T] = held_out_analysis(self.model, self.config, T, seed)
        # the answer digit is never read; the first digit stands in for it
        sequence = torch.cat([digits, digits[:1]])
        return inspect_sequence(self.model, self.config, sequence, seed, held_out=self.analyses[T])


@dataclass
class Catalog:
    generators: dict[str, Generator] = field(default_factory=dict)
    palindromes: dict[str, PalindromeModel] = field(default_factory=dict)

    def generator(self, name) -> Generator:
        if name not in self.generators:
            raise UsageError(f"no generator {name!r} here (available: {', '.join(self.generators) or 'none'})")
        return self.generators[name]

    def palindrome(self, name) -> PalindromeModel:
        if name not in self.palindromes:
            raise UsageError(f"no palindrome model {name!r} here (available: {', '.join(self.palindromes) or 'none'})")
        return self.palindromes[name]

    def add(self, path, description: str = "", metrics: dict | None = None) -> None:
        """Load a checkpoint or `pretrained:NAME`; anything but a generator or palindrome model is refused."""
        loaded = load_checkpoint(path)
        name = str(path)
        if loaded.kind == gan_models.KIND:
            self.generators[name] = Generator(name, loaded.model, loaded.config, description, metrics or {})
        elif loaded.kind == recurrent_models.KIND:
            config = PalindromeConfig.from_dict(loaded.config)
            self.palindromes[name] = PalindromeModel(name, loaded.model, config, description, metrics or {})
        else:
            raise UsageError(f"{path} is neither a generator nor a palindrome model (kind {loaded.kind!r})")


def build_catalog(checkpoints=(), shipped: bool = True) -> Catalog:
    """The shipped generators and palindrome models (unless `shipped` is False), then `checkpoints`."""
    catalog = Catalog()
    if shipped:
        metrics = shipped_metrics()
        for name, entry in pretrained_index().items():
            path = PRETRAINED_PREFIX + name
            catalog.add(path, entry.get("description", ""), metrics.get(path))
    for path in checkpoints:
        catalog.add(path)
    return catalog

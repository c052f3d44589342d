"""Scoring palindrome classifiers: on a data set, and a checkpoint on freshly generated palindromes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..errors import UsageError
from ..loading import load_checkpoint
from .config import PalindromeConfig
from .models import KIND
from .palindrome import PalindromeDataset, num_palindromes, random_palindromes

INPUT_FLOATS_PER_BATCH = 2 ** 25    # 128 MB of float32 input per scoring batch, whatever T is
FRESH_FLOATS_PER_BATCH = 2 ** 24    # 64 MB for `palindrome evaluate`: 1,000 sequences at T = 100,000 in under 1 GB


@torch.no_grad()
def evaluate(model, dataset: PalindromeDataset, batch_size: int | None = None,
             input_floats: int = INPUT_FLOATS_PER_BATCH) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a dataset, in eval mode; by default in batches of at most 2,000
    sequences and `input_floats` of encoded input (so scoring at T = 100,000 stays small)."""
    if batch_size is None:
        batch_size = max(1, min(2000, input_floats // (dataset.input_length * dataset.input_dim)))
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


def evaluate_checkpoint(path, n: int = 10000, seed: int = 12345, device: str = "auto",
                        input_length: int | None = None) -> dict:
    """Score a checkpoint on `n` freshly generated palindromes (of its own input length by default)."""
    if n < 1:
        raise UsageError(f"--n must be a positive integer (got {n})")
    if input_length is not None and input_length < 1:
        raise UsageError(f"--input-length must be a positive integer (got {input_length})")
    device = resolve_device(device)
    loaded = load_checkpoint(path, device, kind=KIND)
    config = PalindromeConfig.from_dict(loaded.config)
    length = input_length or config.input_length
    n = min(n, num_palindromes(length, config.num_classes))
    sequences = random_palindromes(n, length, config.num_classes, seed=seed, dtype=torch.uint8)
    dataset = PalindromeDataset(sequences.to(device), config.input_dim, config.num_classes)
    loss, accuracy = evaluate(loaded.model, dataset, input_floats=FRESH_FLOATS_PER_BATCH)
    return {"checkpoint": str(loaded.path), "model": config.model, "trained_input_length": config.input_length,
            "input_length": length, "n": n, "seed": seed, "accuracy": accuracy, "loss": loss}

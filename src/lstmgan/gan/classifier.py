"""The fixed MNIST / Fashion-MNIST classifier whose features define our FID.

Inception-FID compares Inception-v3 features of ImageNet photos; the MNIST analogue
compares the penultimate (128-d) features of a small CNN trained on the data set. The
network must be fixed for scores to be comparable, so its weights ship in the package
(fp16 .safetensors, ~200 KB each, with their metadata) with the command that retrains them:

    lstmgan gan train-classifier --dataset mnist --out src/lstmgan/weights/mnist_classifier.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_state, read_safetensors, write_safetensors
from ..errors import UsageError
from ..seeding import Stream, epoch_order, random_stream, seed_everything
from ..shipped import weights_dir
from ..training import progress_bar
from . import mnist

FEATURE_DIM = 128


class DigitClassifier(nn.Module):
    """28x28 grey images in [-1, 1] -> class logits; `features` gives the 128-d penultimate layer."""

    def __init__(self, num_classes: int = mnist.NUM_CLASSES):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # 14x14
            nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 7x7
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # 3x3
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, FEATURE_DIM),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images.reshape(-1, 1, 28, 28))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (float input is taken to be in [-1, 1] already)."""
    if images.dtype == torch.uint8:
        return images.float().div(127.5).sub(1)
    return images.float()


CLASSIFIER_FORMAT = "lstmgan-classifier"


def weights_path(dataset: str) -> Path:
    return weights_dir() / f"{dataset.replace('-', '_')}_classifier.safetensors"


def load_classifier(dataset: str = "mnist", device="cpu") -> tuple[DigitClassifier, dict]:
    """The shipped classifier for `dataset` (eval mode) and its metadata (test accuracy, command)."""
    path = weights_path(dataset)
    if not path.is_file():
        raise UsageError(f"no shipped classifier for {dataset} ({path} is missing); "
                         f"train one with: lstmgan gan train-classifier --dataset {dataset} --out {path}")
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != CLASSIFIER_FORMAT:
        raise UsageError(f"{path}: not an lstmgan feature classifier")
    model = DigitClassifier()
    load_state(model, tensors, path, "classifier")
    return model.to(device).eval(), json.loads(metadata["meta"])


def _shift(images: torch.Tensor, rng: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation by up to `max_shift` pixels (pad with background, crop)."""
    n = len(images)
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=rng).tolist()
    return torch.stack([padded[k, :, dy[k]:dy[k] + 28, dx[k]:dx[k] + 28] for k in range(n)])


@torch.no_grad()
def accuracy(model: nn.Module, data: mnist.ImageSet, device, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x = to_unit_range(data.images[start:start + batch_size]).to(device)
        correct += (model(x).argmax(1).cpu() == data.labels[start:start + batch_size]).sum().item()
    return correct / len(data)


def train_classifier(dataset: str = "mnist", out=None, epochs: int = 8, batch_size: int = 128, lr: float = 2e-3,
                     seed: int = 0, data_dir=None, device="cpu", progress: bool = True) -> dict:
    """Train the feature classifier; save fp16 weights with metadata; return the metadata."""
    train_set, test_set = mnist.load(dataset, "train", data_dir), mnist.load(dataset, "test", data_dir)
    seed_everything(seed)
    model = DigitClassifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(train_set) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    rng = random_stream(seed, Stream.CLASSIFIER_SHIFTS)
    images = to_unit_range(train_set.images).unsqueeze(1)
    with progress_bar(steps, f"classifier {dataset}", progress) as bar:
        for epoch in range(1, epochs + 1):
            model.train()
            for index in epoch_order(seed, epoch, len(train_set)).split(batch_size):
                x = _shift(images[index], rng).to(device)
                loss = F.cross_entropy(model(x), train_set.labels[index].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
    model.half().float()   # measure exactly the weights that ship (fp16)
    meta = {"dataset": dataset, "test_accuracy": accuracy(model, test_set, device), "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "seed": seed, "feature_dim": FEATURE_DIM,
            "command": f"lstmgan gan train-classifier --dataset {dataset} --epochs {epochs} --seed {seed} --out PATH"}
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    write_safetensors(out or weights_path(dataset), state, {"format": CLASSIFIER_FORMAT, "meta": json.dumps(meta)})
    return meta

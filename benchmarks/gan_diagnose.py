"""Checks of a generator whose validation FID stalls: is it batch norm, the pixels, or the discriminator?

1. Pixel statistics of 5,000 samples beside 5,000 training images: the shares of background
   (< -0.9), stroke (> 0.9) and grey pixels, and the ink per image.
2. The validation FID of the EMA generator (a) with the batch-norm statistics it was trained with
   (copied from the live generator), (b) with them recomputed for its own weights (a cumulative
   average over 200 batches of 64), (c) with batch statistics, batches of 64 as in training.
3. For a training checkpoint (it holds D): D's mean probability of "real" for 5,000 training
   images, 5,000 validation images (D never saw them) and 5,000 samples of the live generator.
   Training and validation alike: D does not memorise; both far above the samples: D wins.

    python benchmarks/gan_diagnose.py CHECKPOINT [--data-dir ../shared/data/mnist] [--n 5000]

Validation only: the split is the one the run was trained beside; the test set is not read.
"""

from __future__ import annotations

import argparse
import copy

import torch

from lstmgan.gan.architectures import build_discriminator, build_generator
from lstmgan.gan.classifier import to_unit_range
from lstmgan.gan.evaluate import TrainingSplit
from lstmgan.gan.metrics import Scorer, labels_at_shares
from lstmgan.gan.models import generate, saved_config
from lstmgan.loading import load_checkpoint
from lstmgan.seeding import Stream, random_stream


def pixel_line(name: str, images: torch.Tensor) -> str:
    x = images.reshape(len(images), -1).float()
    ink = ((x + 1) / 2).sum(1)
    return (f"{name:24s} background {(x < -0.9).float().mean():.3f}  stroke {(x > 0.9).float().mean():.3f}  "
            f"grey {((x >= -0.9) & (x <= 0.9)).float().mean():.3f}  ink per image {ink.mean():.1f} ± {ink.std():.1f}")


def with_recomputed_statistics(G: torch.nn.Module, batches: int = 200, size: int = 64) -> torch.nn.Module:
    """A copy of G whose batch-norm running statistics are the cumulative average over its own batches."""
    H = copy.deepcopy(G).train()
    for m in H.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    rng = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        for _ in range(batches):
            z = torch.randn(size, G.latent_dim, generator=rng)
            H(z, torch.randint(0, 10, (size,), generator=rng) if G.conditional else None)
    return H.eval()


def discriminator_line(data: dict, train, validation, n: int) -> str | None:
    """D's mean probability of "real" on training images, validation images and the live G's samples."""
    if "discriminator" not in data:
        return None
    config = saved_config(data["config"])
    D, G = build_discriminator(config), build_generator(config)
    D.load_state_dict(data["discriminator"])
    G.load_state_dict(data["generator"])
    D.eval(), G.eval()
    z = torch.randn(n, config.latent_dim, generator=torch.Generator().manual_seed(1))
    fake_labels = labels_at_shares(validation.labels, n) if config.conditional else None

    @torch.no_grad()
    def real_probability(images, labels):
        x = to_unit_range(images)
        return torch.cat([torch.sigmoid(D(x[s:s + 500], None if labels is None else labels[s:s + 500]))
                          for s in range(0, len(x), 500)]).mean().item()

    labels = (lambda part: part.labels[:n]) if config.conditional else (lambda part: None)
    with torch.no_grad():
        fake = G(z, fake_labels)
    return (f"D(real): training images {real_probability(train.images[:n], labels(train)):.3f}, "
            f"validation images {real_probability(validation.images[:n], labels(validation)):.3f}; "
            f"D(live G's samples) {real_probability(fake, fake_labels):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint)
    G, config = loaded.model, loaded.config
    train, validation = TrainingSplit.of_config(config).parts(config.get("dataset", "mnist"), args.data_dir)
    z = torch.randn(args.n, G.latent_dim, generator=random_stream(config.get("seed", 0), Stream.EVALUATION))
    labels = labels_at_shares(validation.labels, args.n) if G.conditional else None   # the reference's shares
    samples = generate(G, z, labels)
    print(pixel_line("training images", to_unit_range(train.images[:args.n])))
    print(pixel_line("samples", samples))

    line = discriminator_line(loaded.data, train, validation, args.n)
    if line:
        print(line)
    scorer = Scorer(config.get("dataset", "mnist"), validation, train, device="cpu", reference_name="val")
    H = with_recomputed_statistics(G)
    H_train = copy.deepcopy(H).train()
    with torch.no_grad():
        in_batches = torch.cat([H_train(z[s:s + 64], None if labels is None else labels[s:s + 64])
                                for s in range(0, args.n, 64)])
    for name, images in [("statistics as trained", samples), ("statistics recomputed", generate(H, z, labels)),
                         ("batch statistics", in_batches)]:
        s = scorer.score(images, labels, with_floor=False)
        extra = (f"  lowest digit recall {s['min_class_recall']:.3f}  requested digit {s['conditional_accuracy']:.4f}"
                 if labels is not None else "")
        print(f"validation FID, {name:22s} {s['fid']:7.2f}  precision {s['precision']:.3f}  "
              f"recall {s['recall']:.3f}{extra}")


if __name__ == "__main__":
    main()

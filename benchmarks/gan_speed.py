"""Iterations per second of our GAN training loop against the course-style reference loop.

Both train the seed's architecture on real MNIST, side by side in one process:

* reference: a `torch.utils.data.DataLoader` over a Dataset that turns each image into a
  normalised tensor per sample (what torchvision's MNIST + ToTensor + Normalize do, via
  PIL), a discriminator ending in Sigmoid with `nn.BCELoss`, default Adam; the loop of
  the course code / PyTorch-GAN's gan.py.
* ours: the package's loop: the uint8 data set on the device, batches drawn by index,
  its D and G steps (D passes over real and fake as two batches since the conv architecture
  came, measured below with the earlier single pass; no D weight-gradients in the G step,
  logits BCE) with fused Adam.

    python benchmarks/gan_speed.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

from lstmgan.gan import Discriminator, Generator, mnist
from lstmgan.gan.train import adam, discriminator_loss, frozen, generator_loss, optimize


class PerSampleMNIST(torch.utils.data.Dataset):
    """Like torchvision.datasets.MNIST with ToTensor() + Normalize((0.5,), (0.5,))."""

    def __init__(self, data):
        self.images, self.labels = data.images, data.labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        picture = Image.fromarray(self.images[i].numpy(), mode="L")
        x = torch.from_numpy(np.array(picture, np.uint8, copy=True)).view(28, 28, 1).permute(2, 0, 1)
        x = x.contiguous().to(torch.float32).div(255)
        x = x.sub(torch.as_tensor([0.5]).view(-1, 1, 1)).div(torch.as_tensor([0.5]).view(-1, 1, 1))
        return x, int(self.labels[i])


def reference_loop(data, batch_size):
    G, D = Generator(100), Discriminator()
    D_prob = nn.Sequential(D, nn.Sigmoid())
    loss = nn.BCELoss()
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = torch.utils.data.DataLoader(PerSampleMNIST(data), batch_size=batch_size, shuffle=True)

    def batches():
        while True:
            yield from loader
    stream = batches()

    def step():
        imgs, _ = next(stream)
        valid, fake = torch.ones(len(imgs), 1), torch.zeros(len(imgs), 1)
        z = torch.randn(len(imgs), 100)
        gen = G(z)
        opt_D.zero_grad()
        d_loss = (loss(D_prob(imgs), valid) + loss(D_prob(gen.detach()), fake)) / 2
        d_loss.backward()
        opt_D.step()
        opt_G.zero_grad()
        g_loss = loss(D_prob(gen), valid)
        g_loss.backward()
        opt_G.step()
    return step


def our_loop(data, batch_size):
    G, D = Generator(100), Discriminator()
    opt_G, opt_D = adam(G.parameters(), 2e-4, (0.5, 0.999)), adam(D.parameters(), 2e-4, (0.5, 0.999))
    images = data.images
    order = iter(())

    def step():
        nonlocal order
        index = next(order, None)
        if index is None:
            order = iter(torch.randperm(len(images)).split(batch_size))
            index = next(order)
        real = images[index].float().div_(127.5).sub_(1)
        fake = G(torch.randn(len(index), 100))
        optimize(opt_D, discriminator_loss(D, real, fake.detach())[0])
        with frozen(D):
            optimize(opt_G, generator_loss(D, fake))
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.0, help="approximate time per measurement")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = mnist.load("mnist", "train", args.data_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.rounds} interleaved rounds")
    print("| batch | reference it/s | ours it/s | ours / reference |")
    print("|---|---|---|---|")
    for batch in args.batch_sizes:
        loops = {"reference": reference_loop(data, batch), "ours": our_loop(data, batch)}
        steps = {}
        for name, step in loops.items():          # warm-up, and size a measurement to ~args.seconds
            start = time.perf_counter()
            for _ in range(5):
                step()
            steps[name] = max(5, int(args.seconds / ((time.perf_counter() - start) / 5)))
        rates = {name: [] for name in loops}
        for _ in range(args.rounds):
            for name, step in loops.items():
                start = time.perf_counter()
                for _ in range(steps[name]):
                    step()
                rates[name].append(steps[name] / (time.perf_counter() - start))
        ref, our = statistics.median(rates["reference"]), statistics.median(rates["ours"])
        print(f"| {batch} | {ref:.1f} | {our:.1f} | {our / ref:.2f} |")


if __name__ == "__main__":
    main()

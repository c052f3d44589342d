"""Builds notebooks/gan_walkthrough.ipynb and runs it so it is saved with its outputs.

    python notebooks/build_walkthrough.py
"""
import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# GANs on MNIST — a walkthrough

This notebook uses the generators shipped with `lstmgan` (no training needed, a few seconds on a CPU):

* `pretrained:mnist@1`, `pretrained:mnist@100`, `pretrained:mnist@200` — the seed's MLP GAN, trained with the seed's
  settings (200 epochs, batch 64, constant learning rate), after epoch 1, 100 and 200 of one run;
* `pretrained:mnist` — the recommended unconditional generator: the same networks, conditioned like the cGAN on
  k-means clusters of the training pixels (the digit labels are never read) and drawing its cluster from the noise
  with the clusters' frequencies in the data, so a user gives it noise only; the recipe and the epoch were chosen on
  a validation split (`docs/gan.md`);
* `pretrained:mnist-cgan` — the conditional GAN: a projection discriminator and class-conditional batch norm in G,
  the epoch chosen by FID on a validation split carved from the training images (never by a test-set score);
* `pretrained:mnist-conv-cgan` — the same conditioning on a convolutional generator (`--arch conv`) with a
  feature stage at 28×28, chosen the same way.

They were trained with `lstmgan gan train` (commands and measurements in `docs/gan.md`)."""),
code("""import json

import matplotlib.pyplot as plt
import torch

from lstmgan.gan.sample import interpolate, lerp, sample, slerp
from lstmgan.plots import image_grid


def show(images, ncol, title, ax=None):
    ax = ax or plt.gca()
    ax.imshow(image_grid(images, ncol, scale=1), cmap="gray")
    ax.set_title(title)
    ax.axis("off")"""),
md("""## 1. Samples at the start, halfway and end of training

25 images from the same 25 latent vectors (`seed=0`) for each stage, so the grids are directly comparable."""),
code("""stages = {"epoch 1": "pretrained:mnist@1", "epoch 100": "pretrained:mnist@100",
          "epoch 200": "pretrained:mnist@200", "recommended (pretrained:mnist)": "pretrained:mnist"}
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
for ax, (title, name) in zip(axes, stages.items()):
    images, ncol = sample(name, n=25, seed=0, device="cpu")
    show(images, ncol, title, ax)
plt.tight_layout()"""),
md("""## 2. Latent interpolation

Two latent vectors $z_1, z_2$ and 9 images between them, the share of $z_2$ going 0 → 1.
Linear interpolation (`lerp`) passes close to the origin, where a 100-d Gaussian almost never puts a sample;
spherical interpolation (`slerp`) keeps the path at the typical norm $\\approx\\sqrt{100}$.
`pretrained:mnist` picks a cluster from the first noise coordinate, so along the path it blends the two ends'
clusters instead of jumping through every cluster in between."""),
code("""fig, axes = plt.subplots(2, 1, figsize=(12, 3.2))
for ax, mode in zip(axes, ("lerp", "slerp")):
    images, steps, ends = interpolate("pretrained:mnist", steps=9, mode=mode, seed=3, device="cpu")
    show(images, steps, mode, ax)
plt.tight_layout()

t = torch.linspace(0, 1, 9)
print("norm along lerp: ", [round(v, 1) for v in lerp(ends["z1"], ends["z2"], t).norm(dim=1).tolist()])
print("norm along slerp:", [round(v, 1) for v in slerp(ends["z1"], ends["z2"], t).norm(dim=1).tolist()])"""),
md("""## 3. The conditional GAN: one row per digit

The same 10 latent vectors in every row (one per column); the label picks the digit. Along a row the noise changes
and so does the handwriting: slant, stroke width, open or closed loops. That variety is what the per-digit recall in
section 4 measures."""),
code("""images, ncol = sample("pretrained:mnist-cgan", n=100, seed=0, device="cpu")
plt.figure(figsize=(6, 6))
show(images, ncol, "cGAN, rows = digits 0..9")"""),
code("""fig, axes = plt.subplots(3, 1, figsize=(12, 4.5))
for ax, digit in zip(axes, (2, 5, 8)):
    images, steps, _ = interpolate("pretrained:mnist-cgan", steps=9, mode="slerp", digit=digit, seed=1, device="cpu")
    show(images, steps, f"interpolation within digit {digit}", ax)
plt.tight_layout()"""),
md("""### The convolutional cGAN beside the MLP

`pretrained:mnist-conv-cgan` maps the same input (100 noise coordinates and a digit) through transposed
convolutions instead of fully connected layers. The same latent vectors and labels go into both generators; the
noise means different handwriting to each, so compare the grids for stroke quality and variety, not image by image."""),
code("""fig, axes = plt.subplots(1, 2, figsize=(12, 6))
for ax, name in zip(axes, ("pretrained:mnist-cgan", "pretrained:mnist-conv-cgan")):
    images, ncol = sample(name, n=100, seed=0, device="cpu")
    show(images, ncol, name, ax)
plt.tight_layout()"""),
code("""images, steps, _ = interpolate("pretrained:mnist-conv-cgan", steps=9, mode="slerp", digit=4, seed=1,
                                 device="cpu")
plt.figure(figsize=(12, 1.6))
show(images, steps, "conv cGAN: interpolation within digit 4")"""),
md("""## 4. How good are the samples?

`lstmgan gan evaluate` scores a generator on features of a fixed MNIST classifier shipped with the package
(FID, Inception Score, precision/recall with k = 3, class histogram). The table below is the measurement
from `docs/gan.md` (10,000 samples each, against the 10,000 test images), shipped as `weights/metrics.json`.
Each FID stands beside its **floor**: 10,000 real training images at the same digit shares, scored the same
way (a conditional generator is asked for the test set's digit shares); the **ratio** of the two is what to
read (real images score 0.7–1.3). The **copy rate** is the share of samples nearer a training image than 99%
of test images are to theirs: the test set's own is 1%, and a generator that copies scores far above it."""),
code("""from importlib import resources

table = json.loads((resources.files("lstmgan") / "weights" / "metrics.json").read_text())
print(f"{'generator':28s} {'FID':>8s} {'floor':>6s} {'ratio':>7s} {'recall':>6s} {'copy':>6s}",
      "  min / max digit share   lowest digit recall")
for name, m in table.items():
    if "fid_ratio" not in m:    # the palindrome models' rows, and the real-data reference
        continue
    shares = m["class_histogram"]
    lowest = f"{m['min_class_recall']:.3f}" if "min_class_recall" in m else "—"
    print(f"{name:28s} {m['fid']:8.2f} {m['fid_floor']:6.2f} {m['fid_ratio']:7.2f} {m['recall']:6.3f} "
          f"{100 * m['copy_rate']:5.2f}%  {min(shares):.3f} / {max(shares):.3f}           {lowest}")"""),
md("""A quick live check of the same API on fewer samples (2,000 samples: noisier, and FID is biased
upwards for small samples; on a first run this downloads MNIST, or set `LSTMGAN_DATA_DIR`):"""),
code("""from lstmgan.gan.evaluate import evaluate_checkpoint

live = evaluate_checkpoint("pretrained:mnist", n=2000, device="cpu", reference=False)
{k: round(v, 3) for k, v in live.items() if k in ("fid", "fid_floor", "fid_ratio", "precision", "recall",
                                                  "copy_rate")}"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

if __name__ == "__main__":
    import sys
    from pathlib import Path

    from nbclient import NotebookClient

    out = Path(__file__).with_name("gan_walkthrough.ipynb")
    NotebookClient(nb, timeout=900, kernel_name="python3").execute()   # saved with its outputs
    nbf.write(nb, out)
    print(f"wrote {out}", file=sys.stderr)

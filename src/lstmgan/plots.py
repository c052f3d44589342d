"""Figures and image grids: matplotlib for curves, Pillow for sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_plot(path, panels: list[dict], title: str | None = None, width: float = 5.0) -> None:
    """Save side-by-side line charts; each panel: {"series": {label: (x, y)}, "xlabel", "ylabel", ...}."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, (x, y) in panel["series"].items():
            ax.plot(x, y, label=label, **panel.get("style", {}))
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        if panel.get("logy"):
            ax.set_yscale("log")
        if "ylim" in panel:
            ax.set_ylim(*panel["ylim"])
        if panel.get("title"):
            ax.set_title(panel["title"])
        ax.grid(alpha=0.3)
        if len(panel["series"]) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] (any shape [N, ..., 28, 28]) -> uint8 [N, 28, 28], round((x + 1) / 2 * 255)."""
    x = images.detach().float().cpu().reshape(images.shape[0], 28, 28)
    return ((x.clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).numpy()


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 2) -> Image.Image:
    """Tile uint8 images [N, H, W] into one grayscale picture, `ncol` per row (square by default)."""
    n, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), 255, dtype=np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, ncol)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = image
    picture = Image.fromarray(canvas)
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST) if scale > 1 else picture


def save_grid(images: np.ndarray, path, ncol: int | None = None) -> Image.Image:
    """Save `image_grid(images, ncol)` as a PNG (folders made as needed); returns the picture."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    picture = image_grid(images, ncol)
    picture.save(path)
    return picture

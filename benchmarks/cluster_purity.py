"""How well `--clusters K` pixel clusters separate the digits (what docs/gan.md shows).

    python benchmarks/cluster_purity.py --data-dir ../shared/data/mnist --ks 10 20 50 100

The clusters are the ones a GAN run computes: k-means on the pixels of the training part
(the first 50,000 images; the validation split is left out), seed 0. Purity is the share of
each cluster's images that are its commonest digit; the labels only score the clusters here.
"""

from __future__ import annotations

import argparse
import time

import torch

from lstmgan.gan import mnist
from lstmgan.gan.clusters import pixel_clusters
from lstmgan.gan.config import GANConfig


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, _ = mnist.split_off_validation(mnist.load("mnist", "train", args.data_dir), GANConfig.val_size,
                                         GANConfig.val_split, GANConfig.val_seed)   # a new run's training part
    print("| K | purity | images per cluster (min – max) | k-means seconds |\n|---|---|---|---|")
    for k in args.ks:
        start = time.perf_counter()
        clusters = pixel_clusters(data.images, k, args.seed)
        seconds = time.perf_counter() - start
        counts = torch.zeros(k, mnist.NUM_CLASSES).index_put_((clusters, data.labels), torch.ones(len(clusters)),
                                                              accumulate=True)
        sizes = counts.sum(1)
        print(f"| {k} | {counts.max(1).values.sum() / len(clusters):.3f} | {int(sizes.min())} – {int(sizes.max())} "
              f"| {seconds:.1f} |")


if __name__ == "__main__":
    main()

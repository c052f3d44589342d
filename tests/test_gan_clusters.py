"""The cluster-conditioned unconditional GAN (--clusters): k-means pseudo-classes, never the labels."""

import gzip

import numpy as np
import torch

from lstmgan import load_checkpoint
from lstmgan.gan import GANConfig, Generator
from lstmgan.gan.clusters import kmeans, pixel_clusters
from lstmgan.gan.mnist import SPLITS
from lstmgan.gan.models import ConditionalBatchNorm1d
from lstmgan.gan.train import train
from lstmgan.loading import export_weights

from conftest import idx_bytes, write_idx_set


def test_kmeans_recovers_well_separated_groups_and_repeats_per_seed():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.arange(300) % 3
    points = centres[truth] + 0.5 * torch.randn(300, 2, generator=g)
    found, centroids = kmeans(points, 3, seed=1)
    pairs = {(int(t), int(f)) for t, f in zip(truth, found)}
    assert len(pairs) == 3 and len({f for _, f in pairs}) == 3          # a one-to-one relabelling of the truth
    assert torch.allclose(centroids[found[:3]], centres, atol=0.3)
    assert torch.equal(kmeans(points, 3, seed=1)[0], found)


def test_pixel_clusters_split_mnist_digits_far_better_than_chance(mnist_dir):
    from lstmgan.gan import mnist

    data = mnist.load("mnist", "test", mnist_dir)
    images, labels = data.images[:2000], data.labels[:2000]
    clusters = pixel_clusters(images, 20, seed=0)
    counts = torch.zeros(20, 10).index_put_((clusters, labels), torch.ones(2000), accumulate=True)
    purity = counts.max(1).values.sum() / 2000                           # the labels only score the clusters
    assert purity > 0.6                                                  # a largest-digit guess alone: ~0.11


def test_cluster_generator_draws_clusters_with_the_data_prior_from_z_alone():
    torch.manual_seed(0)
    G = Generator(8, conditional_bn=True, num_clusters=2)
    G.set_cluster_prior(torch.tensor([100, 300]))
    z = torch.randn(20000, 8, generator=torch.Generator().manual_seed(1))
    share = G.cluster_of(z).float().mean()
    assert abs(share - 0.75) < 0.015 and not G.conditional               # a user passes no labels
    G.eval()
    with torch.no_grad():
        for norm in (m for m in G.modules() if isinstance(m, ConditionalBatchNorm1d)):
            norm.shift.weight.normal_()                                  # clusters drawn apart (at init they agree)
        assert torch.equal(G(z[:6]), G(z[:6]))
        before = G(z[:200])
        G.set_cluster_prior(torch.tensor([300, 100]))                    # move the boundary: some z switch cluster
        changed = (G(z[:200]) != before).flatten(1).any(1)
    assert torch.equal(changed, G.cluster_of(z[:200]) != (torch.special.ndtr(z[:200, 0].double()) >= 0.25).long())


def test_cluster_batch_norm_parameters_learn_and_the_option_is_off_by_default():
    torch.manual_seed(0)
    G = Generator(8, conditional_bn=True, num_clusters=4)
    z = torch.randn(64, 8)
    G(z).square().mean().backward()
    used = sorted(set(G.cluster_of(z).tolist()))
    for norm in (m for m in G.modules() if isinstance(m, ConditionalBatchNorm1d)):
        assert (norm.scale.weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist() == used
    assert len(used) > 1
    assert GANConfig().clusters == 0 and "cluster_sizes" not in Generator(8).state_dict()


def write_labels(folder, labels) -> None:
    (folder / f"{SPLITS['train'][1]}.gz").write_bytes(gzip.compress(idx_bytes(np.asarray(labels)), mtime=0))


def test_training_with_clusters_never_reads_the_labels_and_exports(tmp_path):
    """Same images, different label files: a --clusters run must come out bit-identical."""
    runs = []
    for name, labels in (("a", np.zeros(96, dtype=np.int64)), ("b", np.arange(96) % 10)):
        data = write_idx_set(tmp_path / name, 96)
        write_labels(data, labels)
        train({"n_epochs": 1, "batch_size": 32, "val_size": 0, "clusters": 3, "d_projection": True,
               "g_conditional_bn": True, "ema_decay": 0.9, "save_interval": 1000, "snapshot_interval": 0,
               "device": "cpu", "data_dir": str(data)}, tmp_path / f"run-{name}", progress=False)
        runs.append(load_checkpoint(tmp_path / f"run-{name}" / "checkpoints" / "last.pt"))
    a, b = (r.data["model"] for r in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["cluster_sizes"].sum()) == 96 and len(a["cluster_sizes"]) == 3
    exported = load_checkpoint(export_weights(tmp_path / "run-a" / "checkpoints" / "last.pt",
                                              tmp_path / "g.safetensors", "gan"))
    assert torch.equal(exported.model.cluster_sizes, a["cluster_sizes"])    # integers: exact in float16 files
    images = exported.model(torch.randn(5, 100))
    assert images.shape == (5, 1, 28, 28) and torch.isfinite(images).all()


def test_interpolation_blends_the_two_end_clusters_and_ends_exactly_at_both_samples():
    from lstmgan.gan.sample import blended_clusters, slerp

    torch.manual_seed(0)
    G = Generator(8, conditional_bn=True, num_clusters=5).eval()
    G.set_cluster_prior(torch.tensor([1, 1, 1, 1, 1]))
    with torch.no_grad():
        for norm in (m for m in G.modules() if isinstance(m, ConditionalBatchNorm1d)):
            norm.shift.weight.normal_()
    z1, z2 = torch.tensor([-1.5] + [0.3] * 7), torch.tensor([1.5] + [-0.2] * 7)   # clusters 0 and 4
    t = torch.linspace(0, 1, 9)
    weights = blended_clusters(G, z1, z2, t)
    assert torch.allclose(weights.sum(1), torch.ones(9)) and weights[:, 1:4].abs().sum() == 0
    assert torch.equal(weights[4], torch.tensor([0.5, 0, 0, 0, 0.5]))
    with torch.no_grad():
        path = slerp(z1, z2, t)
        images = G(path, weights)
        assert torch.allclose(images[[0, -1]], G(torch.stack([z1, z2])), atol=1e-5)   # soft one-hot = hard cluster
        assert not torch.allclose(images[4], G(path[4:5]))                         # z₀ alone would pick cluster 2

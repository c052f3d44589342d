"""Each GAN option: off by default, and when on it changes the computation the way it says."""

import json

import torch

from lstmgan.gan import Discriminator, GANConfig, Generator
from lstmgan.gan.models import ConditionalBatchNorm1d
from lstmgan.gan.train import EMA

from conftest import write_idx_set


def test_ema_is_the_hand_computed_lerp_and_copies_batch_norm_statistics():
    torch.manual_seed(0)
    G = Generator(8)
    ema = EMA(G, decay=0.9)
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.net[1].running_mean.fill_(0.5)
    ema.update(G)
    live = dict(G.named_parameters())
    for name, value in ema.model.named_parameters():
        assert torch.allclose(value, 0.9 * before[name] + 0.1 * live[name], atol=1e-6), name
    assert torch.equal(ema.model.net[1].running_mean, torch.full_like(G.net[1].running_mean, 0.5))


def test_discriminator_dropout_is_active_in_training_only_and_absent_by_default():
    x = torch.randn(16, 1, 28, 28)
    torch.manual_seed(0)
    with_dropout = Discriminator(dropout=0.3).train()
    assert not torch.equal(with_dropout(x), with_dropout(x))       # a fresh mask each call
    with_dropout.eval()
    assert torch.equal(with_dropout(x), with_dropout(x))
    plain = Discriminator().train()
    assert torch.equal(plain(x), plain(x)) and GANConfig().d_dropout == 0


def test_projection_term_enters_the_discriminator_output():
    torch.manual_seed(0)
    D = Discriminator(num_classes=10, projection=True)
    x, labels = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    features = D.net[:-1](x.view(6, -1))                                        # φ(x): the label is not an input
    expected = D.net[-1](features) + (D.class_projection(labels) * features).sum(1, keepdim=True)
    assert torch.allclose(D(x, labels), expected, atol=1e-6)
    assert not torch.allclose(D(x, labels), D(x, (labels + 1) % 10))
    assert D.net[0].in_features == 784 and Discriminator(num_classes=10).net[0].in_features == 794
    assert not GANConfig().d_projection and not hasattr(Discriminator(num_classes=10), "class_projection")


def test_conditional_batch_norm_gives_per_class_parameters_that_learn():
    torch.manual_seed(0)
    G = Generator(8, num_classes=10, conditional_bn=True)
    norms = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm1d)]
    assert len(norms) == 5 and G.label_embedding is None and G.net[0].in_features == 8
    labels = torch.tensor([3, 3, 7, 7])
    G(torch.randn(4, 8), labels).square().mean().backward()
    for norm in norms:
        used = norm.scale.weight.grad.abs().sum(1) > 0
        assert used.nonzero().flatten().tolist() == [3, 7]       # only the classes in the batch move
    assert not GANConfig().g_conditional_bn
    assert not any(isinstance(m, ConditionalBatchNorm1d) for m in Generator(8, num_classes=10).modules())


def test_training_reads_only_the_training_files_and_never_trains_on_the_validation_split(tmp_path, monkeypatch):
    import lstmgan.gan.train as gan_train
    from lstmgan.gan import mnist

    data_dir = write_idx_set(tmp_path / "only-train", 128)              # no t10k files at all
    full = mnist.load("mnist", "train", data_dir)
    drawn, references = [], []
    real_batches, real_scorer = gan_train.epoch_batches, gan_train.validation_scorer

    def recording_batches(*args):
        batches = real_batches(*args)
        drawn.extend(torch.cat(batches).tolist())
        return batches

    def recording_scorer(config, validation, train_part, device):
        references.append(validation)
        return real_scorer(config, validation, train_part, device)

    monkeypatch.setattr(gan_train, "epoch_batches", recording_batches)
    monkeypatch.setattr(gan_train, "validation_scorer", recording_scorer)
    run = tmp_path / "run"
    gan_train.train(GANConfig(n_epochs=2, batch_size=32, val_size=32, eval_interval=1, eval_samples=40,
                              snapshot_interval=0, save_interval=1000, device="cpu", data_dir=str(data_dir)),
                    run, progress=False)
    held_out = mnist.stratified_validation_index(full.labels, 32, seed=0)
    assert sorted(set(drawn)) == list(range(96))                          # every training image, no other
    assert torch.equal(references[0].images, full.images[held_out])      # the evaluations' reference: the split
    saved = json.loads((run / "config.json").read_text())
    assert (saved["val_split"], saved["val_seed"]) == ("stratified", 0)   # recorded with the run
    assert json.loads((run / "val_reference.json").read_text())["what"].endswith(
        "32-image stratified validation split")
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "fid.png").is_file()

"""Acceptance (one pattern for both parts): a GAN architecture declares its options in its registry entry, as a
Part I model does; sweep columns come from the options' short=/title=; the GAN metrics are one table."""

import ast
import csv
import json
from pathlib import Path

import pytest
import torch

from lstmgan import load_checkpoint
from lstmgan.cli import main
from lstmgan.config import POSITIVE, column_title, named_option, short_name
from lstmgan.gan import metrics, mlp
from lstmgan.gan.architectures import REGISTRY, Architecture, register_architecture
from lstmgan.gan.config import GANConfig
from lstmgan.recurrent.config import PalindromeConfig

from conftest import write_idx_set

SRC = Path(__file__).resolve().parents[1] / "src" / "lstmgan"


class GainGenerator(mlp.Generator):
    """The seed's MLP generator reading z times a gain: a toy architecture with an option of its own."""

    def __init__(self, latent_dim, num_classes, conditional_bn, clusters, gain):
        super().__init__(latent_dim, num_classes, conditional_bn, clusters)
        self.gain = gain

    def forward(self, z, labels=None):
        return super().forward(self.gain * z, labels)


TOY_GAIN = named_option("toy_gain", 1.0, "the gain on z", POSITIVE, short="tg", title="z gain")


@pytest.fixture
def toy():
    spec = register_architecture(Architecture(
        "toy", "a gain on z", lambda c: GainGenerator(c.latent_dim, c.num_classes, c.g_conditional_bn, c.clusters,
                                                      c.toy_gain),
        lambda c: mlp.Discriminator(c.num_conditions, c.d_dropout, c.d_projection), options=(TOY_GAIN,)))
    yield spec
    del REGISTRY["toy"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_idx_set(folder, 128)
    return write_idx_set(folder, 64, split="test")


def tiny(data_dir) -> list[str]:
    return ["--n-epochs", "1", "--batch-size", "32", "--val-size", "32", "--save-interval", "1000",
            "--log-interval", "1", "--snapshot-interval", "0", "--eval-samples", "40", "--device", "cpu",
            "--data-dir", str(data_dir), "--threads", "1", "--quiet"]


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(n in err for n in needles), err


def test_an_architecture_registered_with_its_own_option_gets_flag_validation_loading_sweep_column_and_refusal(
        tmp_path, toy, data, capsys):
    with pytest.raises(SystemExit):
        main(["gan", "train", "--help"])
    help_text = capsys.readouterr().out
    assert "--toy-gain" in help_text and "toy (a gain on z)" in help_text      # the flag, and --arch's choices

    assert main(["gan", "train", "--arch", "toy", "--toy-gain", "2.5", *tiny(data),
                 "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["toy_gain"] == 2.5
    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")    # checkpoint loading builds it back
    assert isinstance(loaded.model, GainGenerator) and loaded.model.gain == 2.5
    capsys.readouterr()

    one_line_error(capsys, main(["gan", "train", "--arch", "mlp", "--toy-gain", "2", *tiny(data),
                                 "--out", str(tmp_path / "no")]), "--toy-gain does not apply to --arch mlp")
    one_line_error(capsys, main(["gan", "train", "--arch", "toy", "--toy-gain", "-1", *tiny(data),
                                 "--out", str(tmp_path / "no")]), "--toy-gain must be positive")
    assert not (tmp_path / "no").exists()

    saved = json.loads((tmp_path / "run" / "config.json").read_text())       # a checkpoint config out of its rules
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    state["config"] = {**saved, "toy_gain": -1.0}
    torch.save(state, tmp_path / "bad.pt")
    one_line_error(capsys, main(["gan", "sample", "--checkpoint", str(tmp_path / "bad.pt"),
                                 "--out", str(tmp_path / "no.png")]), "--toy-gain must be positive")

    assert main(["gan", "sweep", "--arch", "toy", "--toy-gain", "1", "2", "--seeds", "0", "--eval-interval", "1",
                 *tiny(data), "--out", str(tmp_path / "sweep")]) == 0
    assert sorted(p.name for p in (tmp_path / "sweep" / "runs").iterdir()) == ["s0-tg1.0", "s0-tg2.0"]
    header = (tmp_path / "sweep" / "results.md").read_text().splitlines()[0]
    assert "| z gain |" in header
    assert {row["toy_gain"] for row in csv.DictReader(open(tmp_path / "sweep" / "results.csv"))} == {"1.0", "2.0"}


@pytest.fixture
def confidence():
    """A metric added to the table, as a user would: one entry."""
    metric = metrics.Metric("mean_confidence", "mean confidence", lambda s: s.probs.max(1).values.mean().item())
    metrics.METRICS.append(metric)
    yield metric
    metrics.METRICS.remove(metric)


def test_a_metric_added_to_the_table_appears_in_metrics_csv_the_sweep_table_and_gan_evaluate(
        tmp_path, data, confidence, capsys):
    assert main(["gan", "sweep", "--d-dropout", "0", "0.3", "--seeds", "0", "--eval-interval", "1", *tiny(data),
                 "--out", str(tmp_path / "sweep")]) == 0
    run = next((tmp_path / "sweep" / "runs").iterdir())
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert "mean_confidence" in rows[0] and 0 < float([r for r in rows if r["fid"]][-1]["mean_confidence"]) <= 1
    assert "| mean confidence |" in (tmp_path / "sweep" / "results.md").read_text().splitlines()[0]
    capsys.readouterr()
    assert main(["gan", "evaluate", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--n", "40",
                 "--data-dir", str(data)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["mean_confidence"] <= 1


def test_the_metrics_table_names_each_metric_once_with_its_title_and_scale():
    names = [m.name for m in metrics.METRICS]
    assert len(names) == len(set(names))
    conditional_only = {m.name for m in metrics.METRICS if m.conditional}
    assert conditional_only == {"conditional_accuracy", "min_class_recall"}
    assert {m.name for m in metrics.METRICS if m.scale == 100} >= {"min_class_share", "conditional_accuracy"}
    assert "cluster_mismatch" in metrics.sample_metrics(clustered=True)
    assert "cluster_mismatch" not in metrics.sample_metrics(clustered=False)


def option_names() -> set[str]:
    return {f.name for cls in (PalindromeConfig, GANConfig) for f in cls.option_fields()}


def test_no_module_keeps_a_name_to_column_dict_or_a_table_key_list():
    """Sweep folders and columns come from option(short=, title=); no module repeats them in a dict or list."""
    options = option_names()
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.Assign):
                continue
            value = node.value
            keys = value.keys if isinstance(value, ast.Dict) else value.elts if isinstance(value, ast.List) else []
            named = [k.value for k in keys if isinstance(k, ast.Constant) and k.value in options]
            if len(named) >= 3:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert found == []


def test_every_option_in_a_sweep_table_is_found_by_its_short_and_title():
    from lstmgan.recurrent.sweep import table_options

    titled = table_options()
    assert [column_title(f) for f in titled][:3] == ["Model", "T", "Input Dim"]
    assert all(f.metadata["title"] for f in titled)
    fields = {f.name: f for f in GANConfig.option_fields()}
    assert short_name(fields["seed"]) == "s" and column_title(fields["d_dropout"]) == "--d-dropout"
    assert column_title(fields["g_width"]) == "G maps"

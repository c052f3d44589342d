"""Acceptance (issue: safe loading, weights without pickle, a package that installs like one)."""

import argparse
import json
import shutil
import struct
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import torch

from lstmgan import load_checkpoint
from lstmgan.checkpoint import read_checkpoint, write_safetensors
from lstmgan.cli import build_parser, main
from lstmgan.errors import UsageError
from lstmgan.gan import Generator
from lstmgan.loading import export_weights
from lstmgan.recurrent import LSTM
from lstmgan.shipped import pretrained_index, record_shipped, weights_dir

from conftest import ROOT, snapshot_tree

HUB_EXTRA = {"generator", "palindrome"}


def hub_name(name: str) -> str:
    return name.replace("@", "_epoch").replace("-", "_")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny palindrome run and a tiny GAN run (live and EMA generators) to export."""
    from lstmgan.gan.train import train as train_gan
    from lstmgan.recurrent.train import train as train_palindrome

    from conftest import write_idx_set

    root = tmp_path_factory.mktemp("runs")
    train_palindrome({"input_length": 6, "data_size": 400, "max_epoch": 1, "num_hidden": 12, "input_dim": 10,
                      "device": "cpu"}, root / "pal", progress=False)
    data = write_idx_set(root / "data", 96)
    train_gan({"n_epochs": 1, "batch_size": 32, "val_size": 0, "ema_decay": 0.9, "save_interval": 1000,
               "snapshot_interval": 0, "device": "cpu", "data_dir": str(data)}, root / "gan", progress=False)
    return root


@pytest.mark.parametrize("kind", ["palindrome", "gan"])
def test_export_and_load_round_trip_gives_identical_outputs(runs, tmp_path, kind):
    checkpoint = runs / ("pal" if kind == "palindrome" else "gan") / "checkpoints" / "last.pt"
    out = export_weights(checkpoint, tmp_path / "model.safetensors", kind, metrics={"fid": 1.5})
    original, exported = load_checkpoint(checkpoint).model, load_checkpoint(out).model
    if kind == "gan":   # exported generators travel in float16: compare with the original rounded the same way
        original.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                                  for k, v in original.state_dict().items()})
        x = torch.randn(5, 100, generator=torch.Generator().manual_seed(0))
    else:
        x = torch.nn.functional.one_hot(torch.randint(10, (5, 6)), 10).float()
    with torch.no_grad():
        assert torch.equal(original(x), exported(x))
    loaded = load_checkpoint(out)
    assert loaded.kind == kind and loaded.data["metrics"] == {"fid": 1.5} and not out.read_bytes().startswith(b"PK")


def test_export_refuses_to_overwrite_and_checks_the_suffix(runs, tmp_path):
    checkpoint = runs / "gan" / "checkpoints" / "last.pt"
    (tmp_path / "taken.safetensors").write_text("keep me")
    for out, message in ((tmp_path / "taken.safetensors", "already exists"), (tmp_path / "g.pt", ".safetensors")):
        with pytest.raises(UsageError, match=message):
            export_weights(checkpoint, out, "gan")
    assert (tmp_path / "taken.safetensors").read_text() == "keep me"
    raw = export_weights(checkpoint, tmp_path / "raw.safetensors", "gan", raw=True)
    live = read_checkpoint(checkpoint)["generator"]
    assert all(torch.equal(v.half(), read_checkpoint(raw)["model"][k]) for k, v in live.items()
               if v.is_floating_point())


def malformed_files(folder: Path, good: Path) -> list[tuple[Path, str]]:
    data = good.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    cases = []

    def case(name, content, message):
        path = folder / f"{name}.safetensors"
        path.write_bytes(content)
        cases.append((path, message))

    case("empty", b"", "truncated")
    case("truncated-header", data[:8 + size // 2], "truncated header")
    case("truncated-data", data[:len(data) - 100], "not a readable .safetensors file")
    case("oversized-header", struct.pack("<Q", 1 << 40) + data[8:], "oversized")
    case("garbled-header", data[:8] + b"{" * size + data[8 + size:], "not a readable .safetensors file")
    meta = dict(header["__metadata__"])

    def with_metadata(**changes):
        new_header = json.dumps({**header, "__metadata__": {**meta, **changes}}).encode()
        return struct.pack("<Q", len(new_header)) + new_header + data[8 + size:]

    case("foreign", with_metadata(format="someone-else"), "not an lstmgan weights file")
    case("not-json", with_metadata(config="{not json"), "not lstmgan's JSON")
    case("future", with_metadata(format_version="99"), "newer than this lstmgan")
    case("wrong-kind", with_metadata(kind="palindrome"), "this is a palindrome checkpoint")
    tensors = dict(__import__("safetensors.torch", fromlist=["load"]).load(data))
    reshaped = {**tensors, "net.0.weight": torch.zeros(128, 7, dtype=torch.float16)}
    write_safetensors(folder / "reshaped.safetensors", reshaped, meta)
    cases.append((folder / "reshaped.safetensors", "has shape (128, 7)"))
    retyped = {**tensors, "net.0.weight": tensors["net.0.weight"].to(torch.int16)}
    write_safetensors(folder / "retyped.safetensors", retyped, meta)
    cases.append((folder / "retyped.safetensors", "has dtype torch.int16"))
    return cases


def test_malformed_safetensors_are_one_line_and_exit_2(tmp_path, capsys):
    good = weights_dir() / pretrained_index()["mnist"]["file"]
    for path, message in malformed_files(tmp_path, good):
        before = snapshot_tree(tmp_path)
        code = main(["gan", "sample", "--checkpoint", str(path), "--out", str(tmp_path / "s.png")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, (path.name, err)
        assert snapshot_tree(tmp_path) == before


def test_nothing_shipped_is_a_pickle():
    files = sorted(weights_dir().iterdir())
    assert {p.suffix for p in files} == {".safetensors", ".json"}
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".json":
            json.loads(data)
            continue
        # safetensors: an 8-byte little-endian header size, then that many bytes of JSON. (A first byte of 0x80,
        # pickle's opcode, is a header of 128 + 256k bytes, and was once mistaken for a pickle here.)
        size = int.from_bytes(data[:8], "little")
        assert not data.startswith(b"PK") and data[8:9] == b"{" and 8 + size <= len(data), path.name
        assert "__metadata__" in json.loads(data[8:8 + size]), path.name
    for name, entry in pretrained_index().items():
        assert (weights_dir() / entry["file"]).suffix == ".safetensors", name


def test_the_torch_floor_is_declared_and_an_older_torch_refuses_pt_files(runs, monkeypatch):
    dependencies = (ROOT / "pyproject.toml").read_text().split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"torch>=2.10"' in dependencies
    checkpoint = runs / "pal" / "checkpoints" / "last.pt"
    monkeypatch.setattr(torch, "__version__", "2.5.1")
    with pytest.raises(UsageError, match="CVE-2025-32434.*upgrade to torch>=2.10"):
        read_checkpoint(checkpoint)
    assert load_checkpoint("pretrained:mnist").kind == "gan"       # .safetensors needs no unpickler
    monkeypatch.setattr(torch, "__version__", "2.10.0")
    assert read_checkpoint(checkpoint)["kind"] == "palindrome"


def test_torch_hub_lists_and_loads_the_shipped_models():
    # torch.hub.list reads only GitHub; this is its own listing of a hubconf, applied to ours
    hubconf = torch.hub._import_module("hubconf", str(ROOT / "hubconf.py"))
    entries = {f for f in dir(hubconf) if callable(getattr(hubconf, f)) and not f.startswith("_")}
    assert entries - HUB_EXTRA == {hub_name(n) for n in pretrained_index()}
    G = torch.hub.load(str(ROOT), "generator", source="local", name="mnist-cgan", trust_repo=True)
    assert isinstance(G, Generator) and not G.training
    with torch.no_grad():
        images = G(torch.randn(6, G.latent_dim), torch.arange(6))
    assert images.shape == (6, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    G = torch.hub.load(str(ROOT), "mnist_epoch100", source="local", trust_repo=True)
    assert G(torch.randn(2, 100)).shape == (2, 1, 28, 28)
    palindromes = [n for n, e in pretrained_index().items() if e["kind"] == "palindrome"]
    if palindromes:
        model = torch.hub.load(str(ROOT), "palindrome", source="local", name=palindromes[0], trust_repo=True)
        assert isinstance(model, LSTM) and not model.training


def subcommands(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from subcommands(sub, path + (name,))


def test_every_help_shows_defaults_and_the_pretrained_names():
    for path, parser in subcommands(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False) and \
                    not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                shown = parser.formatter_class(parser.prog)._get_help_string(action)
                assert "(default" in shown, (path, action.option_strings)
        if any("--checkpoint" in a.option_strings for a in parser._actions):
            text = " ".join(parser.format_help().split())
            kind = "palindrome" if path[0] == "palindrome" else "gan"
            for name, entry in pretrained_index().items():
                if entry["kind"] == kind:
                    assert f"pretrained:{name}" in text, (path, name)


def test_data_dir_accepts_torchvisions_layout(tmp_path, mnist_dir):
    from lstmgan.gan import mnist

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist_dir.glob("*.gz"):
        shutil.copy(name, raw / name.name)
    assert mnist.locate("mnist", tmp_path) == raw and len(mnist.load("mnist", "test", tmp_path)) == 10000


def test_the_wheel_installs_and_samples_from_a_fresh_environment(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "build", "dist",
                                                                "*.egg-info", "__pycache__", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "SetuptoolsDeprecationWarning" not in built.stdout + built.stderr
    wheel = next((tmp_path / "dist").glob("lstmgan-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    assert "License-Expression: MIT" in metadata and any(n.endswith("licenses/LICENSE") for n in names)
    assert any(n.endswith("lstmgan/weights/mnist.safetensors") for n in names)
    assert any(n.endswith("recurrent/kernels/recurrences.cpp") for n in names)
    large = [n for n, size in sizes.items() if size > 300_000 and not n.endswith(".safetensors")]
    assert not large, large

    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # torch and the other dependencies come from this environment, as a user's own torch would
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    out = tmp_path / "x.png"
    done = subprocess.run([str(env_dir / "bin" / "lstmgan"), "gan", "sample", "--checkpoint", "pretrained:mnist",
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where = subprocess.run([str(python), "-c", "import lstmgan; print(lstmgan.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path).stdout
    assert str(env_dir) in where and out.stat().st_size > 1000


def test_record_shipped_keeps_the_index_layout_and_adds_metrics(tmp_path):
    for name in ("pretrained.json", "metrics.json"):
        shutil.copy2(weights_dir() / name, tmp_path / name)
    before = (tmp_path / "pretrained.json").read_text()
    record_shipped("mnist-new", {"file": "new.safetensors", "kind": "gan", "description": "a test — entry"},
                   {"fid": 1.5}, folder=tmp_path)
    after = (tmp_path / "pretrained.json").read_text()
    assert after.startswith(before[:-3]) and after.count("\n") == before.count("\n") + 1   # one line more
    assert json.loads(after)["mnist-new"]["description"] == "a test — entry" and "—" in after
    assert json.loads((tmp_path / "metrics.json").read_text())["pretrained:mnist-new"] == {"fid": 1.5}
    record_shipped("mnist-new", metrics={"fid": 1.4}, folder=tmp_path)            # metrics alone: the index stays
    assert (tmp_path / "pretrained.json").read_text() == after
    assert json.loads((tmp_path / "metrics.json").read_text())["pretrained:mnist-new"] == {"fid": 1.4}

"""The explorer's server, through its real HTTP endpoints (no browser): every endpoint and every bad input."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from lstmgan.explorer.catalog import Catalog, build_catalog  # noqa: E402
from lstmgan.explorer.server import Background  # noqa: E402
from lstmgan.gan.classifier import load_classifier, to_unit_range  # noqa: E402
from lstmgan.gan.sample import sample  # noqa: E402

CGAN, CLUSTER_GAN, T200 = "pretrained:mnist-cgan", "pretrained:mnist", "pretrained:palindrome-T200"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog()


@pytest.fixture(scope="module")
def url(catalog):
    with Background(catalog) as base:
        yield base


def get(url: str, path: str, **params):
    """(status, content type, body bytes) of a GET."""
    full = url + path.lstrip("/") + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(full, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def post(url: str, path: str, payload, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(payload).encode()
    request = urllib.request.Request(url + path.lstrip("/"), data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def cells(png: bytes, pad: int = 2, size: int = 28, n: int = 25, ncol: int = 5) -> np.ndarray:
    """The uint8 images [n, 28, 28] of a grid PNG drawn at scale 1."""
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    out = []
    for k in range(n):
        r, c = divmod(k, ncol)
        out.append(picture[pad + r * (size + pad): pad + r * (size + pad) + size,
                           pad + c * (size + pad): pad + c * (size + pad) + size])
    return np.stack(out)


def read_as_digits(images: np.ndarray) -> torch.Tensor:
    classifier, _ = load_classifier("mnist")
    with torch.no_grad():
        return classifier(to_unit_range(torch.from_numpy(images))).argmax(1)


def test_models_lists_the_shipped_generators_and_palindrome_models_with_their_metrics(url):
    status, _, body = get(url, "/api/models")
    models = json.loads(body)
    generators = {g["name"]: g for g in models["generators"]}
    palindromes = {p["name"]: p for p in models["palindromes"]}
    assert status == 200 and {CGAN, CLUSTER_GAN} <= set(generators) and T200 in palindromes
    assert generators[CGAN]["conditional"] and generators[CLUSTER_GAN]["clusters"] == 50
    assert 0 < generators[CLUSTER_GAN]["metrics"]["fid"] < 10        # weights/metrics.json, beside the generator
    assert palindromes[T200]["max_length"] == 400 and palindromes[T200]["inspectable"]


def test_the_page_and_its_assets_are_served_locally_with_a_same_origin_policy(url):
    status, headers, body = get(url, "/")
    assert status == 200 and b"/static/app.js" in body
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    for asset in ("/static/app.js", "/static/style.css"):
        assert get(url, asset)[0] == 200
    page = body.decode() + get(url, "/static/app.js")[2].decode() + get(url, "/static/style.css")[2].decode()
    assert "http://" not in page and "https://" not in page and "//fonts." not in page


def test_grid_is_the_seeds_25_samples_and_changes_with_the_seed(url):
    status, headers, first = get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=5)
    assert status == 200 and headers["Content-Type"] == "image/png"
    expected, _ = sample(CLUSTER_GAN, n=25, seed=5, device="cpu")      # what `lstmgan gan sample --seed 5` draws
    np.testing.assert_array_equal(cells(first), expected)
    assert get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=5)[2] == first
    assert not np.array_equal(cells(get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=6)[2]), expected)


def test_grid_download_is_an_attachment_at_a_larger_scale(url):
    status, headers, body = get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=1, scale=4, download=1)
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    small = Image.open(io.BytesIO(get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=1)[2]))
    assert Image.open(io.BytesIO(body)).size == (small.width * 4, small.height * 4)


def test_a_conditional_generator_asked_for_a_7_draws_sevens(url):
    status, _, body = get(url, "/api/grid.png", generator=CGAN, seed=0, digit=7)
    assert status == 200
    assert (read_as_digits(cells(body)) == 7).sum() >= 23


def test_a_chosen_cluster_draws_one_cluster_and_differs_from_the_noises_own(url):
    own = cells(get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=2)[2])
    chosen = cells(get(url, "/api/grid.png", generator=CLUSTER_GAN, seed=2, cluster=3)[2])
    assert not np.array_equal(own, chosen)
    assert read_as_digits(chosen).bincount().max() >= 15     # one cluster is mostly one digit


@pytest.mark.parametrize("generator, extra", [(CLUSTER_GAN, {}), (CGAN, {"digit": 4}), (CGAN, {}),
                                              ("pretrained:mnist@200", {})])
def test_between_starts_at_cell_a_ends_at_cell_b_and_moves_in_between(url, generator, extra):
    grid = cells(get(url, "/api/grid.png", generator=generator, seed=9, **extra)[2])

    def image(t, mode="lerp"):
        status, _, body = get(url, "/api/between.png", generator=generator, seed=9, a=3, b=17, t=t, mode=mode,
                              scale=1, **extra)
        assert status == 200
        return np.asarray(Image.open(io.BytesIO(body)).convert("L"))

    np.testing.assert_array_equal(image(0), grid[3])
    np.testing.assert_array_equal(image(1), grid[17])
    middle = image(0.5)
    assert not np.array_equal(middle, grid[3]) and not np.array_equal(middle, grid[17])
    assert not np.array_equal(image(0.5, "slerp"), middle)


@pytest.mark.parametrize("path, params, message", [
    ("/api/grid.png", {"generator": "nope"}, "no generator 'nope'"),
    ("/api/grid.png", {"generator": CLUSTER_GAN, "digit": 7}, "not conditioned on the digit"),
    ("/api/grid.png", {"generator": CGAN, "digit": 12}, "digit must be in 0..9"),
    ("/api/grid.png", {"generator": CGAN, "digit": "seven"}, "digit must be a whole number"),
    ("/api/grid.png", {"generator": CGAN, "cluster": 1}, "has no clusters"),
    ("/api/grid.png", {"generator": CLUSTER_GAN, "cluster": 50}, "cluster must be in 0..49"),
    ("/api/grid.png", {"generator": CLUSTER_GAN, "seed": -1}, "seed must be in"),
    ("/api/grid.png", {"generator": CLUSTER_GAN, "scale": 100}, "scale must be in 1..8"),
    ("/api/between.png", {"generator": CLUSTER_GAN, "t": 2}, "t must be in 0..1"),
    ("/api/between.png", {"generator": CLUSTER_GAN, "t": "half"}, "t must be a number"),
    ("/api/between.png", {"generator": CLUSTER_GAN, "a": 25}, "a must be in 0..24"),
    ("/api/between.png", {"generator": CLUSTER_GAN, "mode": "cubic"}, "mode must be lerp or slerp"),
    ("/api/palindrome/fresh", {"model": T200, "length": 401}, "length must be in 1..400"),
    ("/api/palindrome/fresh", {"model": T200, "length": 0}, "length must be in 1..400"),
    ("/api/palindrome/fresh", {"model": "nope"}, "no palindrome model 'nope'"),
])
def test_bad_queries_get_a_400_with_one_line_and_the_server_keeps_serving(url, path, params, message):
    status, headers, body = get(url, path, **params)
    error = json.loads(body)["error"]
    assert status == 400 and message in error and "\n" not in error
    assert get(url, "/api/models")[0] == 200


def test_fresh_palindrome_reads_T_digits_and_the_answer_is_the_first(url):
    status, _, body = get(url, "/api/palindrome/fresh", model=T200, length=200, seed=4)
    fresh = json.loads(body)
    digits = fresh["sequence"] + str(fresh["answer"])
    assert status == 200 and len(fresh["sequence"]) == 200 and digits == digits[::-1]


def test_predict_gives_the_first_digit_of_fresh_palindromes_with_class_probabilities(url):
    right = 0
    for seed in range(10):
        fresh = json.loads(get(url, "/api/palindrome/fresh", model=T200, length=200, seed=seed)[2])
        status, result = post(url, "/api/palindrome/predict", {"model": T200, "sequence": fresh["sequence"]})
        assert status == 200 and len(result["probabilities"]) == 10
        assert abs(sum(result["probabilities"]) - 1) < 1e-4 and result["length"] == 200
        right += result["prediction"] == fresh["answer"] == result["first_digit"]
    assert right >= 9


@pytest.mark.parametrize("model", ["lstm", "gru", "transformer", "lru"])
def test_round_4s_shipped_contestants_are_served_and_remember_200_digits(url, model):
    name = f"pretrained:palindrome-{model}-T200"
    listed = {p["name"]: p for p in json.loads(get(url, "/api/models")[2])["palindromes"]}
    assert listed[name]["inspectable"] is (model in ("lstm", "gru"))
    right = 0
    for seed in range(5):
        fresh = json.loads(get(url, "/api/palindrome/fresh", model=name, length=200, seed=seed)[2])
        status, result = post(url, "/api/palindrome/predict", {"model": name, "sequence": fresh["sequence"]})
        right += status == 200 and result["prediction"] == fresh["answer"]
    assert right == 5                                         # 100% on 2,000 fresh palindromes when shipped
    if model == "gru":
        status, result = post(url, "/api/palindrome/inspect", {"model": name, "sequence": fresh["sequence"]})
        assert status == 200 and result["state"] == "h" and len(result["trace"]["z"]) == 4


def test_typed_sequences_may_be_separated_by_spaces_or_commas(url):
    plain = post(url, "/api/palindrome/predict", {"model": T200, "sequence": "3141592"})[1]
    spaced = post(url, "/api/palindrome/predict", {"model": T200, "sequence": "3, 1 4,1 5 9 2"})[1]
    assert plain == spaced and plain["length"] == 7


@pytest.mark.parametrize("payload, message", [
    ({"model": T200, "sequence": "12a45"}, "only the digits 0-9"),
    ({"model": T200, "sequence": "1 2 10 4"}, "digit 10 is outside 0-9"),
    ({"model": T200, "sequence": "1 2 -3"}, "only the digits 0-9"),
    ({"model": T200, "sequence": "٣٤٥"}, "only the digits 0-9"),        # non-ASCII digits
    ({"model": T200, "sequence": ""}, "the sequence is empty"),
    ({"model": T200, "sequence": "7" * 401}, "T = 401 is over this model's limit of 400"),
    ({"model": T200, "sequence": 12345}, "sequence must be a string"),
    ({"model": "nope", "sequence": "123"}, "no palindrome model 'nope'"),
    ([1, 2], "must be a JSON object"),
])
@pytest.mark.parametrize("endpoint", ["/api/palindrome/predict", "/api/palindrome/inspect"])
def test_bad_sequences_get_a_400_with_one_line_and_the_server_keeps_serving(url, endpoint, payload, message):
    status, result = post(url, endpoint, payload)
    assert status == 400 and message in result["error"] and "\n" not in result["error"]
    assert get(url, "/api/models")[0] == 200


def test_a_body_that_is_not_json_gets_a_400(url):
    status, result = post(url, "/api/palindrome/predict", None, raw=b"sequence=123")
    assert status == 400 and "must be JSON" in result["error"]


def test_inspect_returns_the_memory_picture_and_the_numbers_of_palindrome_inspect(url, catalog):
    fresh = json.loads(get(url, "/api/palindrome/fresh", model=T200, length=200, seed=1)[2])
    status, result = post(url, "/api/palindrome/inspect", {"model": T200, "sequence": fresh["sequence"]})
    assert status == 200 and result["input_length"] == 200 and result["model"] == "lstm"
    assert result["first_digit"] == fresh["answer"] == result["prediction"]
    assert len(result["carriers"]) == 4 and result["units_carrying"] >= 1
    picture = Image.open(io.BytesIO(__import__("base64").b64decode(result["png"])))
    assert picture.format == "PNG" and picture.width > 400
    assert len(result["trace"]["c"]) == 4 and len(result["trace"]["t"]) == 200


@pytest.fixture(scope="module")
def lru_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("lru")
    done = cli("palindrome", "train", "--model", "lru", "--input-length", "5", "--data-size", "300",
               "--max-epoch", "1", "--num-hidden", "8", "--quiet", "--out", out / "run")
    assert done.returncode == 0, done.stderr
    return out / "run" / "checkpoints" / "best.pt"


def test_a_model_without_a_memory_picture_still_predicts_and_inspect_says_why_not(lru_checkpoint):
    catalog = build_catalog([lru_checkpoint], shipped=False)
    with Background(catalog) as base:
        name = str(lru_checkpoint)
        assert json.loads(get(base, "/api/models")[2])["palindromes"][0]["inspectable"] is False
        assert post(base, "/api/palindrome/predict", {"model": name, "sequence": "12321"})[0] == 200
        status, result = post(base, "/api/palindrome/inspect", {"model": name, "sequence": "12321"})
        assert status == 400 and "states to show (lstm, rnn, gru)" in result["error"] and "has none" in result["error"]


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "{notes}"], "notes.pt: "),
    (["--checkpoint", "{missing}"], "checkpoint not found"),
    (["--checkpoint", "{classifier}"], "not an lstmgan weights file"),
    (["--checkpoint", "pretrained:nope"], "no pretrained model 'nope'"),
    (["--port", "70000"], "--port must be in 0..65535"),
    (["--host", "203.0.113.9"], "cannot listen on 203.0.113.9"),
])
def test_explore_refuses_bad_start_up_input_with_one_line_and_exit_2(tmp_path, args, message):
    from lstmgan.gan.classifier import weights_path

    (tmp_path / "notes.pt").write_text("not a model")
    names = {"notes": tmp_path / "notes.pt", "missing": tmp_path / "missing.pt", "classifier": weights_path("mnist")}
    done = cli("explore", "--no-shipped", *[a.format(**names) for a in args], timeout=120)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def listening_ports_of(pid: int) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets `pid` listens on, from /proc (IPv4 and IPv6)."""
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:        # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((address, int(port, 16)))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_explore_listens_on_loopback_only_prints_its_url_and_stops_cleanly_on_ctrl_c():
    process = subprocess.Popen([sys.executable, "-m", "lstmgan", "explore", "--port", "0", "--no-shipped",
                                "--checkpoint", CLUSTER_GAN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = process.stdout.readline()
        base = line.split()[2]
        assert base.startswith("http://127.0.0.1:")
        assert get(base, "/api/grid.png", generator=CLUSTER_GAN)[0] == 200
        listening = listening_ports_of(process.pid)
        assert listening and all(address == "0100007F" for address, _ in listening)   # 127.0.0.1, nothing else
        assert {port for _, port in listening} == {int(base.rstrip("/").rsplit(":", 1)[1])}
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0 and "stopped" in err and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()


def test_a_taken_port_gets_one_line_and_exit_2():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        start = time.time()
        done = cli("explore", "--no-shipped", "--port", taken.getsockname()[1], timeout=120)
    assert done.returncode == 2 and "cannot listen on 127.0.0.1" in done.stderr and time.time() - start < 60


@pytest.mark.parametrize("options", [{"arch": "conv", "conditional": True, "d_projection": True,
                                      "g_conditional_bn": True},
                                     {"arch": "conv", "clusters": 3, "d_projection": True, "g_conditional_bn": True}],
                         ids=["conv-cgan", "conv-clusters"])
def test_a_conv_generator_checkpoint_is_served_like_the_shipped_ones(options, tmp_path):
    from lstmgan.gan.train import train

    from conftest import write_idx_set

    data = write_idx_set(tmp_path / "data", 64)
    train({"n_epochs": 1, "batch_size": 16, "val_size": 0, "save_interval": 1000, "snapshot_interval": 0,
           "device": "cpu", "data_dir": str(data), **options}, tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    catalog = build_catalog([checkpoint], shipped=False)
    G = catalog.generator(str(checkpoint))
    assert G.info()["arch"] == "conv"
    extra = {"digit": 3} if options.get("conditional") else {"cluster": 2}
    grid = G.grid(5, **extra)
    assert grid.shape == (25, 28, 28)
    np.testing.assert_array_equal(G.between(5, 4, 9, 0.0, **extra), grid[4])
    np.testing.assert_array_equal(G.between(5, 4, 9, 1.0, "slerp", **extra), grid[9])

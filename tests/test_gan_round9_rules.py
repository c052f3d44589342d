"""Round 9's rule (docs/log/gan-screens.md §9), as benchmarks/gan_round9.py reads it from the logged screens:
the verdicts it gives must be the ones the docs wrote by hand, and a bad screen name is refused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import benchmark_script

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gan_round9.py"


@pytest.fixture(scope="module")
def round9():
    return benchmark_script("gan_round9")


def test_recipe_a_verdicts_are_the_documented_ones(round9):
    verdicts = {o: round9.judged(f"a-{o}", "a-base") for o in ("sn-hinge", "r1-0.1", "r1-1", "r1-0.01", "diffaug")}
    assert verdicts == {"sn-hinge": "passes", "r1-0.1": "passes", "r1-1": "passes", "r1-0.01": "tie",
                        "diffaug": "fails"}                                   # §9.2-9.6
    assert round9.band("a-sn-hinge", "a-base") == pytest.approx(0.27, abs=0.005)
    assert round9.combination("a") == ["sn-hinge", "r1-0.1"]                 # R1 at its best passing γ only
    assert round9.judged("a-sn-hinge-r1", "a-sn-hinge") == "tie"              # §9.7: the simpler recipe stands


def test_recipe_b_verdicts_are_the_documented_ones(round9):
    assert round9.judged("b-sn-hinge", "b-base") == "passes"                  # §9.10
    assert round9.judged("b-r1-0.1", "b-base") == "passes"                    # §9.11
    assert round9.judged("b-r1-1", "b-base") == "tie"                         # §9.12
    assert round9.judged("b-r1-0.01", "b-base") == "tie"                      # §9.13
    assert round9.band("b-r1-0.01", "b-base") == pytest.approx(1.25, abs=0.005)   # its own seed spread
    assert round9.judged("b-diffaug", "b-base") == "fails"                    # §9.14
    assert round9.combination("b") == ["sn-hinge", "r1-0.1"]                 # R1 at its best passing γ only
    assert round9.flags("b-combo")[:2] == ["--clusters", "50"]
    assert round9.judged("b-combo", "b-sn-hinge") == "tie"                    # §9.15: the simpler recipe stands


@pytest.mark.parametrize("argv", [["run", "c-base"], ["run", "b-nothing"], ["verdict", "z"]])
def test_an_unknown_screen_is_refused_with_one_line_and_exit_2(argv):
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error:")


def test_the_shipped_recipe_is_the_decided_one_over_40_epochs(round9):
    assert round9.decided("a") == ["sn-hinge"]                 # §9.7: the combination tied, so the simpler stands
    flags = round9.flags("a-ship")
    assert flags[:1] == ["--conditional"] and "--spectral-norm" in flags and "--r1-gamma" not in flags
    assert flags[-4:] == ["--n-epochs", "40", "--lr-decay-from", "20"]    # after the screen's 20: the later flag wins
    assert round9.decided("b") == ["sn-hinge"]                 # §9.15: the same for recipe B
    flags = round9.flags("b-ship")
    assert flags[:2] == ["--clusters", "50"] and "--spectral-norm" in flags and "--r1-gamma" not in flags


def test_no_recipe_ships_before_its_combination_is_screened(round9, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(round9, "LOG", tmp_path)
    for name in ("b-base", "b-sn-hinge", "b-r1-0.1"):           # two passing options, no b-combo logged
        (tmp_path / name).mkdir()
        for file in ("best_val_seed0.json", "best_val_seed1.json", "val_reference.json"):
            (tmp_path / name / file).write_bytes((round9.ROOT / "docs/log/gan-round9" / name / file).read_bytes())
    with pytest.raises(SystemExit) as stopped:
        round9.decided("b")
    assert stopped.value.code == 2 and "has not been screened yet" in capsys.readouterr().err


def test_publish_is_refused_until_the_shipping_verdict_says_ships(round9, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(round9, "LOG", tmp_path)
    with pytest.raises(SystemExit) as stopped:                   # no shipping run at all
        round9.publish("b", "unused")
    assert stopped.value.code == 2 and "no shipping verdict that ships" in capsys.readouterr().err
    (tmp_path / "b-ship").mkdir()
    (tmp_path / "b-ship" / "verdict.json").write_text('{"ships": false}')
    with pytest.raises(SystemExit) as stopped:                   # a verdict that keeps today's generator
        round9.publish("b", "unused")
    assert stopped.value.code == 2


def test_a_shipped_generator_is_described_from_its_own_run(round9):
    logged = round9.ROOT / "docs" / "log" / "gan-round9" / "b-combo"
    config = json.loads((logged / "config.json").read_text())
    text = round9.describe(config, json.loads((logged / "best_val_seed0.json").read_text()))
    assert "50 k-means clusters" in text and "no digit labels read" in text
    assert "spectral norm on every D layer, the hinge loss, R1 γ = 0.1 every 16 D steps" in text
    assert "20 epochs, lr decay from 10" in text and "the epoch (20)" in text and "stratified random 50,000" in text


def test_the_shipping_verdicts_are_the_documented_ones(round9, tmp_path, monkeypatch):
    """§9.9 and §9.16: today's generators stay (each lower by more than the band); the rule, re-read from the
    logged files, gives the verdict the script wrote; and it ships a run that wins by the band within 2 hours."""
    b = round9.shipping_verdict("b")
    assert json.loads((round9.LOG / "b-ship" / "verdict.json").read_text()) == b
    assert not b["ships"] and b["wall_s"] <= round9.MAX_WALL_S                # it lost on FID, not on time
    assert (b["fid_mean"], b["incumbent_fid_mean"], b["band"]) == pytest.approx((5.24, 4.35, 0.55), abs=0.005)
    a = round9.shipping_verdict("a")
    assert a["incumbent_fid_mean"] < a["fid_mean"] - a["band"] and not a["ships"]
    logged = tmp_path / "b-ship"                                               # the same run, had it won
    logged.mkdir()
    for file in (round9.LOG / "b-ship").glob("*.json"):
        logged.joinpath(file.name).write_text(file.read_text())
    for seed in round9.SEEDS:
        kept = logged / f"shipped_mnist_val_seed{seed}.json"
        kept.write_text(json.dumps(json.loads(kept.read_text()) | {"fid": 5.24 + b["band"] + 0.01}))
    monkeypatch.setattr(round9, "LOG", tmp_path)
    assert round9.shipping_verdict("b")["ships"]
    (logged / "trained.json").write_text(json.dumps({"wall_s": round9.MAX_WALL_S + 1, "threads": 2, "resumed": False}))
    assert not round9.shipping_verdict("b")["ships"]                          # over 2 hours: not from a CPU run
    (logged / "trained.json").write_text(json.dumps({"wall_s": 5748.5, "threads": 2, "resumed": True}))
    assert not round9.shipping_verdict("b")["ships"]                          # resumed: its whole time is unknown

"""Round 4's decision rules (docs/palindrome.md §5.8), as benchmarks/palindrome_round4.py carries them out:
which lengths are a model's boundaries, which cells are capped and how far, which go on past T = 1000."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "palindrome_round4.py"


@pytest.fixture(scope="module")
def round4():
    spec = importlib.util.spec_from_file_location("palindrome_round4", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(T, best, fresh=None, seconds_per_step=1.0, model="lstm", capped=False):
    return {"model": model, "T": T, "best": best, "fresh": best if fresh is None else fresh,
            "seconds_per_step": seconds_per_step, "capped": capped}


def test_boundaries_are_the_longest_learned_length_and_the_first_failed_one(round4, monkeypatch):
    recipe = {"model": "lstm"}
    rows = [row(100, 1.0)] * 3 + [row(200, 1.0)] * 3 + [row(500, 1.0), row(500, 0.2), row(500, 1.0)]
    monkeypatch.setattr(round4, "finished", lambda stage: rows)
    cells = [(recipe, T) for T in (100, 200, 500, 1000)]
    assert [T for _, T in round4.boundaries(cells)] == [200, 500]


def test_a_length_not_run_yet_is_no_boundary(round4, monkeypatch):
    recipe = {"model": "lstm"}
    rows = [row(100, 1.0)] * 3 + [row(200, 0.1)] * 3      # 500 and 1000 not run: they must not count as learned
    monkeypatch.setattr(round4, "finished", lambda stage: rows)
    cells = [(recipe, T) for T in (100, 200, 500, 1000)]
    assert [T for _, T in round4.boundaries(cells)] == [100, 200]
    monkeypatch.setattr(round4, "finished", lambda stage: [row(100, 0.1)] * 3)
    assert [T for _, T in round4.boundaries(cells)] == [100]


def test_capped_epochs_scale_the_step_time_as_measured_between_the_two_longest_lengths(round4):
    # 1 s per step at 500, 2 s at 1000: linear, so 4 s per step at 2000; 2 h = 1,800 steps = 11 epochs of 160
    rows = [row(500, 1.0, seconds_per_step=1.0)] * 3 + [row(1000, 1.0, seconds_per_step=2.0)] * 3
    assert round4.capped_epochs(rows, "lstm", 2000) == 11
    # a capped run's step time is not used to set another cap
    assert round4.capped_epochs(rows + [row(2000, 1.0, seconds_per_step=100.0, capped=True)], "lstm", 4000) == 5
    # one length measured: quadratic is assumed (attention's worst case)
    assert round4.capped_epochs([row(500, 1.0, seconds_per_step=1.0)], "lstm", 1000) == 11
    assert round4.capped_epochs([], "lstm", 1000) is None
    assert round4.capped_epochs([row(500, 1.0, seconds_per_step=1000.0)], "lstm", 1000) is None   # no epoch fits


def test_a_model_goes_past_1000_only_when_every_seed_learned_on_fresh_palindromes(round4):
    learned = [row(1000, 1.0, fresh=0.995)] * 3
    assert round4.all_learned(learned, "lstm", 1000)
    assert not round4.all_learned(learned[:2], "lstm", 1000)                         # a seed still missing
    assert not round4.all_learned(learned[:2] + [row(1000, 1.0, fresh=0.98)], "lstm", 1000)
    assert not round4.all_learned(learned, "gru", 1000)                              # another model's runs


def test_models_that_failed_every_seed_at_a_shorter_length_are_marked(round4):
    rows = [row(100, 1.0)] * 3 + [row(200, 0.1)] * 3
    assert not round4.failed_shorter(rows, "lstm", 200)
    assert round4.failed_shorter(rows, "lstm", 500)
    assert not round4.failed_shorter(rows + [row(200, 0.995)], "lstm", 500)           # one seed got there


def test_a_recorded_pause_is_not_counted_as_running_time(round4, tmp_path):
    assert round4.paused_seconds(tmp_path) == 0.0
    (tmp_path / "paused.json").write_text('{"paused_s": 3756}')
    assert 5000.0 - round4.paused_seconds(tmp_path) == 1244.0


def test_the_shipped_longest_length_counts_capped_runs_and_lengths_past_1000(round4, tmp_path, monkeypatch):
    monkeypatch.setattr(round4, "LOG", tmp_path / "log")
    monkeypatch.setattr(round4, "RUNS", tmp_path / "runs")
    recipe = {"model": "transformer", "setting": "causal-sin", "rate": 0.001}

    def logged(sweep, T, accuracy):
        kept = tmp_path / "log" / "round" / f"{sweep}-transformer-T{T}-s0"
        kept.mkdir(parents=True)
        (kept / "config.json").write_text(f'{{"input_length": {T}, "max_epoch": 8}}')
        (kept / "fresh.json").write_text(f'{{"accuracy": {accuracy}}}')

    logged("transformer-causal-sin-lr0.001", 200, 1.0)
    logged("transformer-causal-sin-lr0.001-cap8", 1000, 0.995)
    logged("transformer-causal-sin-lr0.001-cap2", 2000, 0.1)          # not learned
    logged("transformer-causal-random-lr0.001", 4000, 1.0)            # another setting's run
    assert round4.shipped_lengths("transformer", recipe) == [200, 1000]
    checkpoint = (tmp_path / "runs" / "round" / "transformer-causal-sin-lr0.001-cap8-T1000-seeds0_1_2" / "runs"
                  / "transformer-T1000-s0" / "checkpoints" / "best.pt")
    checkpoint.parent.mkdir(parents=True)
    checkpoint.touch()
    assert round4.round_checkpoint(recipe, 1000, 0, "best.pt") == checkpoint
    assert round4.round_checkpoint(recipe, 2000, 0, "best.pt") is None

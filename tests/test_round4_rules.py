"""Round 4's decision rules (docs/palindrome.md §5.8), as benchmarks/palindrome_round4.py carries them out:
which lengths are a model's boundaries, which cells are capped and how far, which go on past T = 1000."""

from pathlib import Path

import pytest

from conftest import benchmark_script


@pytest.fixture(scope="module")
def round4():
    return benchmark_script("palindrome_round4")


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


def test_the_shipped_longest_length_is_the_longest_cell_every_seed_learned(round4, tmp_path, monkeypatch):
    """Capped runs and lengths past 1000 count; a length where seed 0 learned but another seed did not does not."""
    monkeypatch.setattr(round4, "LOG", tmp_path / "log")
    monkeypatch.setattr(round4, "RUNS", tmp_path / "runs")
    recipe = {"model": "transformer", "setting": "causal-sin", "rate": 0.001}
    rows = []

    def logged(sweep, T, accuracies, setting="causal-sin"):
        for seed, accuracy in enumerate(accuracies):
            rows.append(row(T, accuracy, model="transformer") | {"setting": setting, "rate": 0.001, "seed": seed})
        kept = tmp_path / "log" / "round" / f"{sweep}-transformer-T{T}-s0"
        kept.mkdir(parents=True)
        (kept / "config.json").write_text(f'{{"input_length": {T}, "max_epoch": 8}}')
        (kept / "fresh.json").write_text(f'{{"accuracy": {accuracies[0]}}}')

    monkeypatch.setattr(round4, "finished", lambda stage: rows)
    logged("transformer-causal-sin-lr0.001", 200, [1.0, 1.0, 1.0])
    logged("transformer-causal-sin-lr0.001-cap8", 1000, [0.995, 1.0, 1.0])
    logged("transformer-causal-sin-lr0.001-cap2", 2000, [1.0, 0.2, 1.0])     # seed 0 learned, the cell did not
    logged("transformer-causal-random-lr0.001", 4000, [1.0] * 3, "causal-random")   # another setting's runs
    assert round4.shipped_lengths("transformer", recipe) == [200, 1000]


def test_a_round_checkpoint_is_found_in_a_cells_sweep_or_in_one_seeds_run(round4, tmp_path, monkeypatch):
    monkeypatch.setattr(round4, "RUNS", tmp_path / "runs")
    recipe = {"model": "transformer", "setting": "causal-sin", "rate": 0.001}
    for sweep, T in (("transformer-causal-sin-lr0.001-cap8-T1000-seeds0_1_2", 1000),
                     ("transformer-causal-sin-lr0.001-cap2-T2000-s0", 2000)):
        checkpoint = tmp_path / "runs" / "round" / sweep / "runs" / f"transformer-T{T}-s0" / "checkpoints" / "best.pt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.touch()
        assert round4.round_checkpoint(recipe, T, 0, "best.pt") == checkpoint
    assert round4.round_checkpoint(recipe, 4000, 0, "best.pt") is None
    assert round4.round_checkpoint(recipe, 1000, 1, "best.pt") is None


def fake_sweep(tmp_path, curve="epoch,test_accuracy\n1,1.0\n", calls=None):
    """A stand-in for sweep(): writes each run's folder as a finished run would (no training)."""
    def run(grid, fixed, out, resume, threads, progress):
        (calls if calls is not None else []).append((grid["seed"], fixed.get("max_epoch")))
        folder = Path(out) / "runs" / f"{grid['model'][0]}-T{grid['input_length'][0]}-s{grid['seed'][0]}"
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        (folder / "metrics.csv").write_text(curve)
    return run


def test_each_seed_of_a_cell_is_its_own_run_and_is_logged_as_it_finishes(round4, tmp_path, monkeypatch):
    """A session that ends mid-cell keeps every seed that finished (the cell's sweep used to log only at its end)."""
    monkeypatch.setattr(round4, "LOG", tmp_path / "log")
    monkeypatch.setattr(round4, "RUNS", tmp_path / "runs")
    calls, logged = [], []
    monkeypatch.setattr(round4, "sweep", fake_sweep(tmp_path, calls=calls))

    def log_run(run, kept):
        logged.append((len(calls), kept.name))
        kept.mkdir(parents=True)
        (kept / "fresh.json").write_text('{"accuracy": 1.0}')

    monkeypatch.setattr(round4, "log_run", log_run)
    (tmp_path / "log" / "round" / "lru-long-lr0.003-cap12-lru-T2000-s1").mkdir(parents=True)
    (tmp_path / "log" / "round" / "lru-long-lr0.003-cap12-lru-T2000-s1" / "fresh.json").write_text("{}")
    round4.run_cell("round", "lru", "long", 0.003, (2000,), (0, 1, 2), max_epoch=12)
    assert calls == [([0], 12), ([2], 12)]                      # seed 1 was logged already
    assert logged == [(1, "lru-long-lr0.003-cap12-lru-T2000-s0"), (2, "lru-long-lr0.003-cap12-lru-T2000-s2")]


def test_ship_reproduces_a_lost_run_and_ships_it_only_if_it_repeats_the_logged_curve(round4, tmp_path, monkeypatch):
    monkeypatch.setattr(round4, "RUNS", tmp_path / "runs")
    recipe = {"model": "transformer", "setting": "causal-sin", "rate": 0.001}
    kept = tmp_path / "log" / "transformer-causal-sin-lr0.001-cap8-transformer-T1000-s0"
    kept.mkdir(parents=True)
    (kept / "config.json").write_text('{"max_epoch": 8}')
    (kept / "metrics.csv").write_text("epoch,test_accuracy\n1,1.0\n")
    calls = []
    monkeypatch.setattr(round4, "sweep", fake_sweep(tmp_path, calls=calls))
    checkpoint = round4.reproduce(recipe, 1000, kept)
    assert calls == [([0], 8)]
    assert checkpoint == (tmp_path / "runs" / "round" / "transformer-causal-sin-lr0.001-cap8-T1000-s0" / "runs"
                          / "transformer-T1000-s0" / "checkpoints" / "best.pt")
    monkeypatch.setattr(round4, "RUNS", tmp_path / "other")
    monkeypatch.setattr(round4, "sweep", fake_sweep(tmp_path, curve="epoch,test_accuracy\n1,0.98\n"))
    assert round4.reproduce(recipe, 1000, kept) is None

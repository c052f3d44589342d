"""`lstmgan gan study`: Part II's screens on the shared study runner (issue 52 §3): each seed trains for the plan's
budget in iterations, its best.pt is scored on the validation split over sampling seeds that skip its selection
seed, and the table judges each contender against the baseline by the band."""

import json

import pytest

from lstmgan import studies
from lstmgan.cli import main
from lstmgan.gan.study import CELL, GANOutcome, verdict

from conftest import write_idx_set

PLAN = """
name = "tiny-gan"
log = "{log}"
budgets = [8]
[fixed]
batch_size = 16
val_size = 32
eval_interval = 1
eval_samples = 40
snapshot_interval = 0
save_interval = 1000
log_interval = 2
device = "cpu"
data_dir = "{data}"
[[contenders]]
name = "base"
options = {{}}
[[contenders]]
name = "two-d-steps"
options = {{ d_steps = 2 }}
[seeds]
first = 1
[rate]
grid = [0.0002]
[scoring]
samples = 40
seeds = 3
first_seed = 0
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return write_idx_set(write_idx_set(folder, 160), 64, split="test")


def test_a_tiny_gan_plan_trains_scores_without_the_selection_seed_and_judges(data, tmp_path, capsys):
    plan = tmp_path / "tiny.toml"
    plan.write_text(PLAN.format(log=tmp_path / "log", data=data))
    assert main(["gan", "study", "run", str(plan), "--quiet"]) == 0
    for name in ("base", "two-d-steps"):
        run = tmp_path / "log" / "runs" / f"{name}-T8-s0"
        scores = json.loads((run / "study_scores.json").read_text())
        assert scores["selection_seed"] == 0 and scores["seeds"] == [1, 2, 3]     # seed 0 chose best.pt
        assert len(scores["fid"]) == 3 and scores["fid_floor_sd"] > 0
        config = json.loads((run / "config.json").read_text())
        assert config["max_iterations"] == 8 and "study_scoring" not in config
    assert json.loads((tmp_path / "log" / "runs" / "two-d-steps-T8-s0" / "config.json").read_text())["d_steps"] == 2
    capsys.readouterr()
    assert main(["gan", "study", "table", str(plan)]) == 0
    table = capsys.readouterr().out
    assert "| base | 8 | 1 |" in table and "baseline" in table
    assert any(word in table for word in ("better (", "worse (", "tie (")) and "## Amendments" in table
    curves = studies.plot(studies.load_plan(plan), CELL)                        # FID against iterations
    assert set(curves) == {(8, "base", 0), (8, "two-d-steps", 0)} and (tmp_path / "log" / "fid.png").is_file()
    assert all(xs == [8] and len(ys) == 1 for xs, ys in curves.values())      # one epoch of 8 batches: one score
    # a second run trains nothing: every seed is in
    mtime = (tmp_path / "log" / "runs" / "base-T8-s0" / "study_scores.json").stat().st_mtime
    assert main(["gan", "study", "run", str(plan), "--quiet"]) == 0
    assert (tmp_path / "log" / "runs" / "base-T8-s0" / "study_scores.json").stat().st_mtime == mtime


def test_the_verdict_needs_a_margin_beyond_the_floor_and_the_sampling_spread():
    base = [GANOutcome([10.0, 10.2, 10.4], 2.0, 0.1, None, 8)]
    assert verdict([GANOutcome([9.0, 9.1, 9.2], 2.0, 0.1, None, 8)], base).startswith("better")   # 1.2 > 0.4
    assert verdict([GANOutcome([9.9, 10.0, 10.1], 2.0, 0.1, None, 8)], base).startswith("tie")   # 0.2 < 0.4
    assert verdict([GANOutcome([9.0, 9.5, 10.0], 2.0, 0.1, None, 8)], base).startswith("tie")    # spread 1.0
    assert verdict([GANOutcome([11.5, 11.5, 11.5], 2.0, 0.3, None, 8)], base).startswith("worse")  # 1.3 > 0.9


def test_a_gan_plan_is_checked_in_one_line(data, tmp_path, capsys):
    plan = tmp_path / "bad.toml"
    plan.write_text(PLAN.format(log=tmp_path / "log", data=data).replace("eval_interval = 1", "eval_interval = 0"))
    assert main(["gan", "study", "run", str(plan)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eval_interval > 0" in err
    plan.write_text(PLAN.format(log=tmp_path / "log", data=data).replace("d_steps = 2", "d_steps = 0"))
    assert main(["gan", "study", "run", str(plan)]) == 2
    assert "--d-steps must be a positive integer" in capsys.readouterr().err
    both = PLAN.format(log=tmp_path / "log", data=data).replace("budgets = [8]", "budgets = [8]\nlengths = [8]")
    plan.write_text(both)
    with pytest.raises(Exception, match="lengths or budgets"):
        studies.load_plan(plan)
    assert CELL.options.__doc__

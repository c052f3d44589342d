"""Acceptance (issue 51): costs counted right and declared once, and the pre-registered study runner."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lstmgan import studies, training
from lstmgan.cli import main
from lstmgan.recurrent import REGISTRY
from lstmgan.recurrent import study as palindrome_study
from lstmgan.recurrent.config import PalindromeConfig
from lstmgan.recurrent.palindrome import encode_digits
from lstmgan.recurrent.registry import build_model
from lstmgan.stats import clopper_pearson, fisher_exact


def test_clopper_pearson_and_fisher_match_known_values():
    known = {(3, 3): (0.2924, 1.0), (0, 5): (0.0, 0.5218), (2, 3): (0.0943, 0.9916), (5, 5): (0.4782, 1.0),
             (7, 10): (0.3475, 0.9333), (0, 1): (0.0, 0.975)}          # R's binom.test
    for (k, n), (low, high) in known.items():
        assert clopper_pearson(k, n) == pytest.approx((low, high), abs=5e-5), (k, n)
    assert fisher_exact(3, 3, 2, 3) == pytest.approx(1.0)                # 3/3 against 2/3: no difference
    assert fisher_exact(5, 5, 0, 5) == pytest.approx(2 / 252)


def counted_flops(config: PalindromeConfig) -> int:
    """FlopCounterMode's count of one training step on a path it sees: per-gate recurrences, math attention."""
    model = build_model(config)
    if hasattr(model, "scan"):
        model.scan = "loop"
    digits = torch.randint(0, config.num_classes, (config.batch_size, config.input_length))
    x = encode_digits(digits, config.input_dim, config.num_classes)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), digits[:, 0]).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("model", sorted(REGISTRY))
@pytest.mark.parametrize("length", [6, 20])
def test_each_models_cost_formula_matches_the_flop_counter(model, length):
    per_gate = {"backend": "per-gate"} if "per-gate" in REGISTRY[model].backends else {}
    config = PalindromeConfig(model=model, input_length=length, input_dim=10, num_hidden=16, batch_size=8,
                              **per_gate)
    formula = REGISTRY[model].flops(config)
    visible = formula.products + formula.attention          # the LRU's scan is elementwise: the counter never sees it
    assert visible == pytest.approx(counted_flops(config), rel=0.05)
    assert (formula.scan > 0) == (model == "lru") and (formula.attention > 0) == (model == "transformer")


def test_attention_is_counted_the_transformers_flops_grow_faster_than_t():
    round4 = dict(model="transformer", input_dim=10, num_hidden=64, num_layers=2, num_heads=4, batch_size=100,
                  attention="causal")
    at = {T: REGISTRY["transformer"].flops(PalindromeConfig(input_length=T, **round4)).total for T in (200, 400)}
    assert at[400] > 2.3 * at[200]


def test_palindrome_cost_prints_parameters_flops_and_measured_seconds(capsys):
    assert main(["palindrome", "cost", "--model", "gru", "--input-length", "12", "--num-hidden", "16",
                 "--batch-size", "8", "--threads", "1", "--json"]) == 0
    cost = json.loads(capsys.readouterr().out)
    config = PalindromeConfig(model="gru", input_length=12, num_hidden=16, batch_size=8)
    assert cost["flops_per_step"]["total"] == REGISTRY["gru"].flops(config).total
    assert cost["parameters"] == sum(p.numel() for p in build_model(config).parameters())
    assert cost["seconds_per_step"] > 0 and cost["threads"] == 1


PLAN = """
name = "tiny"
description = "{description}"
log = "{log}"
lengths = [5]

[fixed]
input_dim = 10
num_hidden = 16
batch_size = 100
data_size = 1000
backend = "eager"
device = "cpu"

[[contenders]]
name = "lstm"
options = {{ model = "lstm" }}

[[contenders]]
name = "gru"
options = {{ model = "gru" }}

[seeds]
first = 2
boundary = 3

[rate]
grid = [0.003, 0.01]
select_at = 5
max_extensions = 1

[horizon]
flops = {{ "5" = 1e12 }}
max_steps = {{ "5" = 48 }}

[learned]
accuracy = 0.3
{amendments}
"""


def write_plan(path: Path, log: Path, description: str = "a tiny study", amendments: str = "") -> Path:
    path.write_text(PLAN.format(log=log, description=description, amendments=amendments))
    return path


def without_cpu_seconds(text: str) -> list[list[str]]:
    """The table's cells, the measured CPU seconds (column 8) left out: they differ from run to run."""
    return [[cell for i, cell in enumerate(line.split("|")) if i != 8] for line in text.splitlines()]


class Killed(Exception):
    """A run's process dying mid-seed (its last checkpoint stays on disk)."""


@pytest.fixture
def interrupt_second_seed(monkeypatch):
    """Stops the first run of lstm's seed 1 right after its first checkpoint; records every train call."""
    calls, stopped, real_save = [], [], training.Session.save

    def save(self, *snapshots):
        real_save(self, *snapshots)
        if self.run.path.name == "lstm-T5-s1" and not stopped:
            stopped.append(True)
            raise Killed

    def recording_train(config, run_dir, resume=False, progress=True, **kwargs):
        calls.append((Path(run_dir).name, resume))
        return palindrome_study.train(config, run_dir, resume=resume, progress=progress, **kwargs)

    monkeypatch.setattr(training.Session, "save", save)
    monkeypatch.setattr(palindrome_study.PalindromeCell, "train", staticmethod(recording_train))
    return calls


def test_a_tiny_plan_resumes_selects_tabulates_plots_and_keeps_its_amendments(tmp_path, interrupt_second_seed):
    plan = write_plan(tmp_path / "tiny.toml", tmp_path / "log")
    run = ["palindrome", "study", "run", str(plan), "--quiet"]
    with pytest.raises(Killed):
        main(run)
    killed = tmp_path / "log" / "runs" / "lstm-T5-s1"
    assert (killed / "checkpoints" / "last.pt").is_file() and not (killed / "summary.json").exists()
    before = len(interrupt_second_seed)
    assert main(run) == 0
    again = interrupt_second_seed[before:]
    assert again[0] == ("lstm-T5-s1", True)               # the stopped seed resumes from its checkpoint...
    assert again[1:] and all(name.startswith("gru-T5") for name, _ in again[1:])   # ...nothing finished reruns

    choices = json.loads((tmp_path / "log" / "choices.json").read_text())
    for name, grid in choices["grids"].items():           # a choice at the grid's edge extended it by x3
        assert len(grid) == 3 and choices["chosen"][name] in grid
        assert grid[0] == pytest.approx(0.001) or grid[-1] == pytest.approx(0.03)

    assert main(["palindrome", "study", "table", str(plan)]) == 0
    table = (tmp_path / "log" / "results.md").read_text()
    assert "| lstm | 5 |" in table and "| gru | 5 |" in table and "None." in table

    write_plan(plan, tmp_path / "log", description="edited after the first result")
    assert main(run) == 2                                 # an edit without an amendment is refused
    write_plan(plan, tmp_path / "log", description="edited after the first result", amendments=(
        '[[amendments]]\ndate = "2026-12-06"\nreason = "clearer description"\naffects = "no result"\n'))
    assert main(run) == 0 and main(["palindrome", "study", "table", str(plan)]) == 0
    assert "- 2026-12-06: clearer description (affects: no result)" in (tmp_path / "log" / "results.md").read_text()

    drawn = studies.plot(studies.load_plan(plan), palindrome_study.CELL)
    assert (tmp_path / "log" / "survival.png").is_file()
    assert {key: sorted(curves) for key, curves in drawn.items()} == {(5, "flops"): ["gru", "lstm"],
                                                                       (5, "steps"): ["gru", "lstm"]}


def test_the_table_is_the_same_on_ray_as_on_local_processes(tmp_path):
    pytest.importorskip("ray")
    tables = {}
    for engine in ("local", "ray"):
        plan = write_plan(tmp_path / f"{engine}.toml", tmp_path / engine)
        assert main(["palindrome", "study", "run", str(plan), "--engine", engine, "--threads", "1", "--quiet"]) == 0
        assert main(["palindrome", "study", "table", str(plan)]) == 0
        tables[engine] = (tmp_path / engine / "results.md").read_text().replace(f"`{engine}.toml`", "")
    assert without_cpu_seconds(tables["ray"]) == without_cpu_seconds(tables["local"])


def test_round_4s_plan_rebuilds_its_published_table_from_its_logs(capsys):
    """studies/round4.toml reads docs/log/round4/round/ (training nothing) and gives round.md's cells: seeds learned
    on fresh palindromes with the exact interval, the median steps and TFLOP to 99% held out, and its caps."""
    root = Path(__file__).resolve().parent.parent
    published = {}
    for line in (root / "docs/log/round4/round.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[1].isdigit():
            published[cells[0], int(cells[1])] = (cells[2].split(" ")[0], cells[2].split(" ")[1].strip("(),%"),
                                                  cells[3], cells[5])
    plan = studies.load_plan(root / "studies/round4.toml")
    assert plan.logged and len(published) == 23
    rebuilt = {}
    for row in studies.results(plan, palindrome_study.CELL):
        outcomes = row["outcomes"]
        k, n = sum(o.learned for o in outcomes), len(outcomes)
        low, high = clopper_pearson(k, n)
        steps = studies.median([o.steps for o in outcomes if o.steps is not None])
        tflop = studies.median([o.flops / 1e12 for o in outcomes if o.flops is not None])
        rebuilt[row["contender"].split("-")[0], row["size"]] = (
            f"{k}/{n}", f"{100 * low:.0f}–{100 * high:.0f}", studies.shown(steps, ".0f"), studies.shown(tflop, ".1f"))
    assert rebuilt == published
    horizons = {(r["contender"].split("-")[0], r["size"]): r["outcomes"][0].horizon_steps
                for r in studies.results(plan, palindrome_study.CELL)}
    assert horizons["transformer", 2000] == 320 and horizons["lru", 2000] == 1920 and horizons["lstm", 500] == 3200
    assert main(["palindrome", "study", "run", str(root / "studies/round4.toml")]) == 2   # it trains nothing
    assert "trains nothing" in capsys.readouterr().err

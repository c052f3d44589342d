"""A look inside: how an LSTM (or a GRU) holds the first digit across T steps, and where a vanilla RNN loses it.

1. Carriers. On held-out palindromes (a seed of their own), every unit's state (the LSTM's cell
   c_t, the RNN's and the GRU's h_t) at log-spaced steps t is scored by how much of its variance the first digit
   explains: R² = 1 − Σ within-digit variance / total variance. A unit carries the digit across
   the sequence when its lowest R² over those steps is high: the units with the highest lowest-R²
   are drawn, and "units carrying" counts those whose R² stays ≥ 0.5 at every step.
2. Decodability over time: the best unit's R² at log-spaced steps t, on the same sequences.
3. One fresh palindrome: the carriers' c_t and their forget and input gates over t (the RNN:
   its carriers' h_t; the GRU: h_t and its update gate z_t), and the prediction with its class probabilities.
4. Saturation (Karpathy, Johnson & Fei-Fei 2015): for each unit and gate, the fraction of steps
   the gate is below 0.1 (left-saturated) or above 0.9 (right-saturated), on the held-out set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from ..loading import load_checkpoint
from ..plots import pyplot
from .config import PalindromeConfig
from .models import KIND
from .palindrome import encode_digits, num_palindromes, random_palindromes
from .registry import REGISTRY

CARRIERS = 4              # units drawn in the traces
CARRIER_R2 = 0.5          # a unit "carries" the first digit when the digit explains this much of its variance
HELD_OUT = 200            # held-out palindromes for finding the carriers
HELD_OUT_SEED_OFFSET = 7919
MAX_POINTS = 1000         # time points kept per trace in the JSON
SATURATED = (0.1, 0.9)
SATURATION_CHUNK = 200_000  # sequence steps whose states are held at once


def explained_variance(values: torch.Tensor, digits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """R² of each column of `values` [N, H] explained by the digit groups `digits` [N]."""
    values = values.double()
    total = ((values - values.mean(0)) ** 2).sum(0)
    within = torch.zeros_like(total)
    for d in range(num_classes):
        group = values[digits == d]
        if len(group):
            within += ((group - group.mean(0)) ** 2).sum(0)
    return torch.where(total > 0, 1 - within / total.clamp_min(1e-300), torch.zeros_like(total))


def log_spaced_steps(T: int, count: int = 40) -> list[int]:
    """0-based steps from the first to the last, log-spaced (every step for short T)."""
    return sorted({min(T - 1, int(round(v)) - 1) for v in np.geomspace(1, T, min(count, T))})


def inspect(checkpoint, input_length: int | None = None, seed: int = 0, device: str = "cpu") -> dict:
    """The numbers behind the figure (see the module docstring), for a checkpoint of a model with states to show
    (its registry entry names them: the LSTM's, the vanilla RNN's and the GRU's)."""
    if input_length is not None and input_length < 1:
        raise UsageError(f"--input-length must be a positive integer (got {input_length})")
    loaded = load_checkpoint(checkpoint, device, kind=KIND)
    config = PalindromeConfig.from_dict(loaded.config)
    check_inspectable(config, checkpoint)
    T = input_length or config.input_length
    sequence = random_palindromes(1, T, config.num_classes, seed=seed)[0]
    return {"checkpoint": str(loaded.path), **inspect_sequence(loaded.model, config, sequence, seed)}


def inspectable(model: str) -> bool:
    """Whether the model has states to show (its registry entry names the state that carries the digit)."""
    return model in REGISTRY and REGISTRY[model].memory_state is not None


def check_inspectable(config: PalindromeConfig, name) -> None:
    if not inspectable(config.model):
        shown = ", ".join(n for n in REGISTRY if inspectable(n))
        raise UsageError(f"inspect draws models with states to show ({shown}); {name} is a {config.model}, "
                         f"which has none")


def inspect_sequence(model, config: PalindromeConfig, sequence: torch.Tensor, seed: int = 0,
                     held_out: dict | None = None) -> dict:
    """Carriers found on held-out palindromes of the same length, then `sequence` traced at every
    step: T + 1 digits, of which the model reads the first T (the last is the answer, not read).
    `held_out` reuses an earlier `held_out_analysis` of this model, length and seed."""
    T = len(sequence) - 1
    held_out = held_out or held_out_analysis(model, config, T, seed)
    carriers, state = held_out["carriers"], state_name(config)
    x = encode_digits(sequence[None, :-1], config.input_dim, config.num_classes)
    trace = model.states(x)
    with torch.no_grad():
        probabilities = model.predict_proba(x)[0]
    keep = np.unique(np.linspace(0, T - 1, min(T, MAX_POINTS)).round().astype(int)).tolist()
    traced = {name: values[0][keep][:, carriers].T.tolist() for name, values in trace.items()
              if name in (state, *REGISTRY[config.model].traced_gates)}
    result = {
        "model": config.model, "trained_input_length": config.input_length,
        "input_length": T, "seed": seed, "sequence_head": sequence[:20].tolist(),
        "first_digit": int(sequence[0]), "prediction": int(probabilities.argmax()),
        "probabilities": [round(p, 6) for p in probabilities.tolist()],
        "state": state, "num_hidden": config.num_hidden, **held_out,
        "trace": {"t": [k + 1 for k in keep], **traced},
    }
    if REGISTRY[config.model].forget_gate:
        gate, bias = REGISTRY[config.model].forget_gate
        result["forget_gate"] = forget_gate_summary(getattr(model, bias), trace[gate][0], carriers)
    return result


def state_name(config: PalindromeConfig) -> str:
    return REGISTRY[config.model].memory_state


def held_out_analysis(model, config: PalindromeConfig, T: int, seed: int = 0) -> dict:
    """On held-out palindromes of length T: the carriers, decodability over t, and gate saturation."""
    n = min(HELD_OUT, num_palindromes(T, config.num_classes))
    held_out = random_palindromes(n, T, config.num_classes, seed=seed + HELD_OUT_SEED_OFFSET)
    x = encode_digits(held_out[:, :-1], config.input_dim, config.num_classes)
    first = held_out[:, 0]
    steps = log_spaced_steps(T)
    sampled = model.states(x, steps)[state_name(config)]
    r2_over_time = torch.stack([explained_variance(sampled[:, k], first, config.num_classes)
                                for k in range(len(steps))])                       # [steps, H]
    r2 = r2_over_time.min(0).values                                                 # the weakest step of each unit
    carriers = r2.argsort(descending=True)[:CARRIERS].tolist()
    return {"carriers": carriers, "carrier_min_r2": [round(float(r2[u]), 4) for u in carriers],
            "units_carrying": int((r2 >= CARRIER_R2).sum()), "held_out": n,
            "decodability": {"t": [s + 1 for s in steps],
                             "best_unit_r2": [round(float(v), 4) for v in r2_over_time.max(1).values]},
            "saturation": gate_saturation(model, x, REGISTRY[config.model].gates, state_name(config))}


def gate_saturation(model, x: torch.Tensor, gates: tuple[str, ...], state: str) -> dict:
    """Per unit, the fraction of steps each gate is below 0.1 / above 0.9; a model without gates: its
    state's |value| above 0.9 (a state is never "left-saturated" in the gate sense).

    Sequences go through in chunks, so the states held at once stay near SATURATION_CHUNK steps."""
    low, high = SATURATED
    shown = gates or (state,)
    counts = {name: {"left": 0.0, "right": 0.0} for name in shown}
    for chunk in x.split(max(1, SATURATION_CHUNK // x.shape[1])):
        states = model.states(chunk)
        for name in shown:
            values = states[name] if gates else states[name].abs()
            counts[name]["left"] = counts[name]["left"] + (values < low).double().sum((0, 1))
            counts[name]["right"] = counts[name]["right"] + (values > high).double().sum((0, 1))
    total = x.shape[0] * x.shape[1]
    if not gates:
        right = counts[state]["right"] / total
        return {state: {"left": [0.0] * right.shape[-1], "right": right.tolist()}}
    return {gate: {side: (count / total).tolist() for side, count in sides.items()} for gate, sides in counts.items()}


def forget_gate_summary(bias: torch.Tensor, forget: torch.Tensor, carriers: list[int]) -> dict:
    """The forget gates after training (σ(b_f) at zero input and state, and their mean along the sequence):
    all units, and the carriers. A carrier that keeps f_t ≈ 1 keeps its cell for ~1 / (1 − f) steps."""
    at_rest = torch.sigmoid(bias.detach())
    along = forget.mean(0)
    return {"sigmoid_b_f_median": round(float(at_rest.median()), 4),
            "sigmoid_b_f_carriers": [round(float(at_rest[u]), 6) for u in carriers],
            "mean_f_carriers": [round(float(along[u]), 6) for u in carriers],
            "mean_f_all_median": round(float(along.median()), 4),
            "memory_steps_carriers": [round(1 / max(1e-9, 1 - float(along[u])), 1) for u in carriers]}


def draw(result: dict, out) -> None:
    """The figure: traces of the carriers, decodability over t, and gate saturation."""
    plt = pyplot()
    spec = REGISTRY[result["model"]]
    panels = [result["state"], *spec.traced_gates]
    fig, axes = plt.subplots(1, len(panels) + 2, figsize=(4.2 * (len(panels) + 2), 3.6))
    t = result["trace"]["t"]
    names = {"c": "cell state c_t", "f": "forget gate f_t", "i": "input gate i_t", "h": "hidden state h_t",
             "z": "update gate z_t (share kept)"}
    for ax, name in zip(axes, panels):
        for unit, values in zip(result["carriers"], result["trace"][name]):
            ax.plot(t, values, lw=0.9, label=f"unit {unit}")
        ax.set(xlabel="step t", title=names.get(name, f"state {name}"),
               xscale="log" if result["input_length"] > 100 else "linear")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    decoded = result["decodability"]
    axes[len(panels)].plot(decoded["t"], decoded["best_unit_r2"], marker=".")
    axes[len(panels)].set(xlabel="step t", ylabel="R² of the first digit", ylim=(0, 1.02), xscale="log",
                          title="best single unit")
    axes[len(panels)].grid(alpha=0.3)
    ax = axes[-1]
    for gate, fractions in result["saturation"].items():
        ax.scatter(fractions["left"], fractions["right"], s=8, alpha=0.6, label=gate)
    ax.plot([0, 1], [1, 0], color="grey", lw=0.6, ls=":")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="fraction of steps < 0.1", ylabel="fraction of steps > 0.9",
           title="saturation" + ("" if spec.gates else f" (|{result['state']}|)"))
    ax.legend(fontsize=7)
    verdict = "right" if result["prediction"] == result["first_digit"] else "wrong"
    fig.suptitle(f"{spec.title} at T = {result['input_length']}: first digit {result['first_digit']}, "
                 f"predicted {result['prediction']} ({verdict}, p = {max(result['probabilities']):.3f}); "
                 f"{result['units_carrying']} of {result['num_hidden']} units carry it "
                 f"(R² ≥ {CARRIER_R2} at every step)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def inspect_to_figure(checkpoint, out, input_length=None, seed=0, device="cpu") -> dict:
    """`palindrome inspect`: draw the figure at `out` (.png); returns the numbers behind it."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: must end in .png")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    result = inspect(checkpoint, input_length, seed, device)
    draw(result, out)
    return result

"""Palindrome classifiers from a config or a checkpoint (what `lstmgan.load_checkpoint` builds)."""

from __future__ import annotations

from torch import nn

from ..checkpoint import load_state
from ..errors import UsageError
from .config import PalindromeConfig, chrono_tmax
from .lstm import LSTM
from .rnn import VanillaRNN

KIND = PalindromeConfig.kind


def build_model(config: PalindromeConfig) -> nn.Module:
    """The LSTM or vanilla RNN a config describes, freshly initialised (from torch's global RNG)."""
    if config.model == "rnn":
        return VanillaRNN(config.input_dim, config.num_hidden, config.num_classes, backend=config.backend)
    if isinstance(config.forget_bias, str):
        return LSTM(config.input_dim, config.num_hidden, config.num_classes, backend=config.backend,
                    chrono_tmax=chrono_tmax(config.forget_bias, config.input_length))
    return LSTM(config.input_dim, config.num_hidden, config.num_classes, forget_bias=config.forget_bias,
                backend=config.backend)


def model_from_checkpoint(data: dict, path) -> nn.Module:
    """The classifier stored in a validated palindrome checkpoint dict."""
    try:
        config = PalindromeConfig.from_dict(data["config"]).validate()
    except (TypeError, UsageError) as error:
        raise UsageError(f"{path}: checkpoint config is invalid ({error})") from None
    model = build_model(config)
    load_state(model, data["model"], path)
    return model

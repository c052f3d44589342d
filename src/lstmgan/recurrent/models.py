"""Palindrome classifiers from a config or a checkpoint (what `lstmgan.load_checkpoint` builds)."""

from __future__ import annotations

import torch
from torch import nn

from ..checkpoint import load_state
from ..errors import UsageError
from ..loading import register_kind
from .config import PalindromeConfig
from .registry import build_model

KIND = PalindromeConfig.kind

__all__ = ["KIND", "build_model", "model_from_checkpoint"]


def model_from_checkpoint(data: dict, path) -> nn.Module:
    """The classifier stored in a validated palindrome checkpoint dict."""
    try:
        config = PalindromeConfig.from_dict(data["config"]).validate()
    except (TypeError, UsageError) as error:
        raise UsageError(f"{path}: checkpoint config is invalid ({error})") from None
    model = build_model(config)
    load_state(model, data["model"], path)
    return model


register_kind(KIND, model_from_checkpoint, torch.float32)      # the palindrome classifiers are small

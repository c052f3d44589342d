"""The quality metrics against cases whose answer is known by hand."""

import numpy as np
import pytest
import torch

from lstmgan.gan.metrics import (
    frechet_distance,
    gaussian,
    inception_score,
    kl_to_uniform,
    per_class_precision_recall,
    precision_recall,
)


def test_fid_is_zero_for_identical_feature_sets():
    features = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(*gaussian(features), *gaussian(features.clone())) == pytest.approx(0, abs=1e-8)


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + (a + b - 2 * np.sqrt(a * b)).sum()     # 7.25 + (4 + 1 + 0)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(12.25)


def test_precision_and_recall_on_points_on_a_line():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])     # k = 1: every real ball has radius 1
    fake = torch.tensor([[0.5], [10.0]])                          # k = 1: both fake balls have radius 9.5
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.5          # 0.5 lies in a real ball, 10 in none
    assert recall == 1.0             # the ball around 0.5 covers every real point


def test_per_class_recall_shows_collapse_inside_one_class():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0], [13.0]])
    real_labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    fake = torch.tensor([[0.1], [0.2], [10.5], [12.5]])           # class 0 collapsed near 0
    fake_labels = torch.tensor([0, 0, 1, 1])
    precision, recall = per_class_precision_recall(real, real_labels, fake, fake_labels, num_classes=2, k=1)
    assert recall == [0.25, 1.0]     # class 0's balls (radius 0.1) reach only the real 0
    assert precision == [1.0, 1.0]


def test_inception_score_and_class_balance_extremes():
    confident_uniform = torch.eye(10).repeat(10, 1)               # each class predicted with certainty, equally
    assert inception_score(confident_uniform) == pytest.approx(10, rel=1e-6)
    assert inception_score(torch.full((50, 10), 0.1)) == pytest.approx(1, rel=1e-6)
    assert kl_to_uniform([0.1] * 10) == pytest.approx(0, abs=1e-12)
    assert kl_to_uniform([1.0] + [0.0] * 9) == pytest.approx(np.log(10))

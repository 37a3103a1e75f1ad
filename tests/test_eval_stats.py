"""Statistics of the win rate: bootstrap intervals, length control, both-order verdicts."""

import numpy as np

from dynalign.api import Verdict
from dynalign_eval.stats import bootstrap_ci, length_controlled, summarize
from dynalign_eval.winrate import _both_orders


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = rng.choice([0.0, 0.5, 1.0], size=20).tolist()
    large = rng.choice([0.0, 0.5, 1.0], size=2000).tolist()
    low, high = bootstrap_ci(small, 1000, seed=0)
    assert low <= np.mean(small) <= high
    big_low, big_high = bootstrap_ci(large, 1000, seed=0)
    assert (big_high - big_low) < (high - low)


def test_length_control_removes_a_pure_length_preference():
    rng = np.random.default_rng(0)
    diffs = rng.normal(0, 100, size=400)
    diffs += 60  # the aligned model is usually longer
    prefs = (diffs > 0).astype(float)  # and the judge simply prefers the longer answer
    raw = prefs.mean()
    lc, coefficient = length_controlled(prefs, diffs)
    assert raw > 0.65
    assert coefficient > 1
    assert abs(lc - 0.5) < abs(raw - 0.5)


def test_length_control_keeps_a_preference_unrelated_to_length():
    rng = np.random.default_rng(2)
    diffs = rng.normal(0, 100, size=400)
    prefs = (rng.random(400) < 0.8).astype(float)
    lc, _ = length_controlled(prefs, diffs)
    assert abs(lc - prefs.mean()) < 0.05


def test_summary_counts_wins_ties_losses():
    out = summarize([1.0, 1.0, 0.5, 0.0], 200, 0)
    assert (out["wins"], out["ties"], out["losses"], out["n"]) == (2, 1, 1, 4)
    assert out["win_rate"] == 0.625


def test_both_orders_counts_disagreement_as_a_tie():
    a, b, tie, none = Verdict("A"), Verdict("B"), Verdict("tie"), Verdict(None)
    assert _both_orders(a.value, b.value) == 1.0  # first answer wins in both orders
    assert _both_orders(b.value, a.value) == 0.0
    assert _both_orders(a.value, a.value) == 0.5  # position bias: disagreement
    assert _both_orders(tie.value, b.value) == 0.5
    assert _both_orders(none.value, b.value) == 0.5

"""Efficacy metrics: they detect a model that was made to prefer the better answers, and
not one that was not; gap closed tracks how much of the system prompt's effect is in the weights."""

from __future__ import annotations

import random

import pytest

from dynalign.api import ChatModel
from dynalign.values import CalibrationPair
from dynalign_eval.efficacy import efficacy, gap_closed, pair_logprobs, pair_metrics, summary

PAIRS = [
    CalibrationPair(prompt=f"question {i}", better=f"a careful good answer {i}", worse=f"a vague weak answer {i}")
    for i in range(16)
]


class LikelihoodModel(ChatModel):
    """Per-token log-probabilities from a rule: a noisy base level, plus `bonus` for answers
    with 'good', plus `prompted_bonus` under a non-empty system prompt for answers with 'good'."""

    name = "likelihood"

    def __init__(self, bonus: float = 0.0, prompted_bonus: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.bonus, self.prompted_bonus, self.seed = bonus, prompted_bonus, seed

    def completion_logprobs(self, conversations, completions):
        out = []
        for conversation, answer in zip(conversations, completions):
            noise = random.Random(f"{answer}").uniform(-0.3, 0.3)  # same for every model: the base's taste
            drift = random.Random(f"{self.seed}{answer}").uniform(-0.05, 0.05)  # training noise
            prompted = conversation[0]["role"] == "system"
            level = -2.0 + noise + drift + ("good" in answer) * (self.bonus + prompted * self.prompted_bonus)
            out.append([level] * 5)
        return out

    def chat(self, conversations, params):
        return [
            [f"sample {'good' if k % 2 else 'plain'} {i}" for k in range(params.n)] for i in range(len(conversations))
        ]


def test_implicit_reward_detects_a_model_made_to_prefer_the_better_answers():
    base = LikelihoodModel(seed=0)
    trained = pair_metrics(pair_logprobs(base, PAIRS), pair_logprobs(LikelihoodModel(bonus=0.3, seed=1), PAIRS), 500)
    assert trained["implicit_reward_per_token"]["accuracy"] == 1.0
    assert trained["implicit_reward_per_token"]["ci95"][0] > 0.65
    assert trained["preference_aligned_per_token"]["accuracy"] > trained["preference_base_per_token"]["accuracy"]
    assert trained["implicit_reward_adjusted"]["accuracy"] >= 0.9
    assert trained["implicit_reward_adjusted"]["ci95"][0] > 0.65


def test_implicit_reward_stays_at_chance_for_a_model_that_was_not():
    base = LikelihoodModel(seed=0)
    drifted = pair_metrics(pair_logprobs(base, PAIRS), pair_logprobs(LikelihoodModel(seed=7), PAIRS), 500)
    accuracy = drifted["implicit_reward_per_token"]["accuracy"]
    low, high = drifted["implicit_reward_per_token"]["ci95"]
    assert 0.2 <= accuracy <= 0.8 and low < 0.5 < high
    assert drifted["preference_aligned_per_token"]["accuracy"] == drifted["preference_base_per_token"]["accuracy"]


class FlatteningModel(LikelihoodModel):
    """Better answers are the less likely ones (as on hard pairs); `temperature` > 1 scales every
    log-probability towards zero, as a model that merely grew more random would."""

    def __init__(self, temperature: float = 1.0, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.temperature = temperature

    def completion_logprobs(self, conversations, completions):
        rows = super().completion_logprobs(conversations, completions)
        return [
            [(lp - 0.6 * ("good" in answer)) / self.temperature for lp in row] for row, answer in zip(rows, completions)
        ]


def test_likelihood_adjusted_implicit_reward_is_not_fooled_by_a_flatter_model():
    base = FlatteningModel(seed=0)
    flatter = pair_metrics(
        pair_logprobs(base, PAIRS), pair_logprobs(FlatteningModel(temperature=1.3, seed=3), PAIRS), 500
    )
    assert flatter["implicit_reward_per_token"]["accuracy"] == 1.0  # raw: fooled
    adjusted = flatter["implicit_reward_adjusted"]
    low, high = adjusted["ci95"]
    assert 0.2 <= adjusted["accuracy"] <= 0.8 and low < 0.5 < high
    assert adjusted["likelihood_slope"] < 0  # the less likely an answer was, the more it rose


def test_gap_closed_is_full_when_the_weights_carry_the_system_prompt(ca_value):
    base = LikelihoodModel(prompted_bonus=1.0)
    distilled = LikelihoodModel(bonus=1.0, prompted_bonus=0.0)
    prompts = [f"prompt {i}" for i in range(6)]
    full = gap_closed(ca_value, base, distilled, prompts, samples=4, max_new_tokens=8, resamples=200)
    none = gap_closed(ca_value, base, LikelihoodModel(prompted_bonus=1.0), prompts, 4, 8, 200)
    assert full["gap_closed"] == pytest.approx(1.0, abs=0.05) and none["gap_closed"] == pytest.approx(0.0, abs=0.05)
    assert full["kl_base_nats"] > 0 and full["ci95"][0] <= full["gap_closed"] <= full["ci95"][1]


def test_efficacy_reports_both_sections_and_skips_without_pairs(ca_value):
    value = ca_value.model_copy(update={"held_out": tuple(PAIRS)})
    result = efficacy(
        value,
        LikelihoodModel(),
        LikelihoodModel(bonus=0.3),
        ["p1", "p2"],
        samples=2,
        max_new_tokens=8,
        resamples=200,
        seed=0,
        say=lambda line: None,
    )
    assert result["n_pairs"] == 16 and "gap_closed" in result["gap"]
    empty = efficacy(
        ca_value.model_copy(update={"held_out": ()}),
        LikelihoodModel(),
        LikelihoodModel(),
        [],
        samples=2,
        max_new_tokens=8,
        resamples=200,
        seed=0,
        say=lambda line: None,
    )
    assert "skipped" in empty["pairs"] and "skipped" in empty["gap"]


def test_efficacy_on_calibration_data_leaves_the_held_out_pairs_unseen(ca_value):
    seen = []

    class Recording(LikelihoodModel):
        def completion_logprobs(self, conversations, completions):
            seen.extend(completions)
            return super().completion_logprobs(conversations, completions)

    calibration = tuple(PAIRS[:8])
    value = ca_value.model_copy(update={"calibration": calibration, "held_out": tuple(PAIRS[8:])})
    result = efficacy(
        value,
        Recording(),
        Recording(bonus=0.3),
        [],
        split="calibration",
        samples=2,
        max_new_tokens=8,
        resamples=200,
        seed=0,
        say=lambda line: None,
    )
    assert result["split"] == "calibration" and result["n_pairs"] == 8
    assert not {p.better for p in PAIRS[8:]} & set(seen)
    assert summary(result).startswith("on CALIBRATION data")

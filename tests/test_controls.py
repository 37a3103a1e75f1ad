"""The `random-reward` placebo control: registered, seeded, and blind to what answers say."""

from __future__ import annotations

import pytest

from dynalign.api import RunContext
from dynalign.errors import ConfigError
from dynalign.testing import check_component, check_rewarder
from dynalign_controls import RandomRewarder

ASK = [[{"role": "user", "content": "How do I fix a bike tyre?"}]] * 3
ANSWERS = [
    [{"role": "assistant", "content": "Find the puncture, patch it, and check the tyre for glass."}],
    [{"role": "assistant", "content": "No idea."}],
    [{"role": "assistant", "content": "Take it to a shop."}],
]


def build(registry, value, seed: int = 0, **options):
    context = RunContext(value=value, registry=registry, seed=seed)
    return context.build("rewarder", "placebo", options, where="rewarders[0].options")


def test_placebo_is_a_registered_rewarder_with_the_contract(dynalign_registry, ca_value):
    check_component(RandomRewarder)
    rewarder = build(dynalign_registry, ca_value, low=-1.0, high=1.0)
    assert isinstance(rewarder, RandomRewarder)
    scores = check_rewarder(rewarder, ASK, ANSWERS)
    assert all(-1.0 <= s <= 1.0 for s in scores) and len(set(scores)) == 3


def test_placebo_scores_are_fixed_by_seed_prompt_and_answer(dynalign_registry, ca_value):
    first = build(dynalign_registry, ca_value, seed=1)
    assert first(ASK, ANSWERS) == build(dynalign_registry, ca_value, seed=1)(ASK, ANSWERS)  # a resumed run agrees
    assert first(ASK, ANSWERS) != build(dynalign_registry, ca_value, seed=2)(ASK, ANSWERS)
    # plain strings (as `dynalign score` may pass) score the same as the conversation form
    assert first([a[0]["content"] for a in ASK], [a[0]["content"] for a in ANSWERS]) == first(ASK, ANSWERS)


def test_placebo_is_blind_to_quality(dynalign_registry, ca_value):
    rewarder = build(dynalign_registry, ca_value)
    good = [[{"role": "assistant", "content": f"A careful, specific answer number {i}."}] for i in range(200)]
    bad = [[{"role": "assistant", "content": f"Whatever {i}."}] for i in range(200)]
    mean_good = sum(rewarder(ASK[:1] * 200, good)) / 200
    mean_bad = sum(rewarder(ASK[:1] * 200, bad)) / 200
    assert abs(mean_good - 0.5) < 0.1 and abs(mean_bad - 0.5) < 0.1


def test_placebo_range_must_be_ordered(dynalign_registry, ca_value):
    with pytest.raises(ConfigError, match="low .* must be below high"):
        build(dynalign_registry, ca_value, low=1.0, high=1.0)

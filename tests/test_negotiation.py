"""The `negotiation` rewarder: agents deliberate against the fake server (real SDKs as clients)."""

from __future__ import annotations

import json
import re

import pytest

from dynalign.api import RunContext
from dynalign.errors import ConfigError
from dynalign.testing import check_component, check_rewarder
from dynalign_judge.negotiation import NegotiationRewarder

PROMPT = [{"role": "user", "content": "How do we share the community garden fairly?"}]
ANSWER = "Hold a meeting, draw plots by lottery, and set aside beds for those who cannot dig."


def openai_ref(server):
    return {
        "backend": "openai",
        "options": {"model": "fake-judge", "base_url": server.openai_url, "api_key_env": "FAKE_API_KEY"},
    }


def anthropic_ref(server):
    return {
        "backend": "anthropic",
        "options": {"model": "fake-claude", "base_url": server.url, "api_key_env": "FAKE_API_KEY"},
    }


def build(ca_value, registry, run_dir, **options):
    context = RunContext(value=ca_value, registry=registry, run_dir=run_dir)
    return context.build("rewarder", "negotiation", options, "rewarders[0].options")


def agent_of(messages):
    return re.search(r"You are (.+?), one of several judges", messages[0]["content"]).group(1)


def test_default_agents_one_per_pillar_agree_in_one_round(server, ca_value, dynalign_registry, tmp_path):
    check_component(NegotiationRewarder)
    server.script(["Solid and fair.\nScore: 4"])
    rewarder = build(ca_value, dynalign_registry, tmp_path, model=openai_ref(server))
    assert [a.name for a in rewarder.agents] == [p.lower() for p in ca_value.pillar_names]
    assert check_rewarder(rewarder, [PROMPT], [[{"role": "assistant", "content": ANSWER}]]) == [4.0]
    assert server.count() == len(ca_value.pillars)
    assert {agent_of(r["body"]["messages"]) for r in server.requests} == {a.name for a in rewarder.agents}


def test_agents_revise_after_reading_each_other(server, ca_value, dynalign_registry, tmp_path):
    opening = {"knowledge": 5, "power": 1, "vitality": 3, "benevolence": 3}

    def reply(messages, model):
        if len(messages) > 2:  # a later round: the others' arguments have been read
            assert "The other judges argued" in messages[-1]["content"]
            return "Point taken.\nScore: 3"
        return f"From my side, Score: {opening[agent_of(messages)]}"

    server.reply = reply
    rewarder = build(ca_value, dynalign_registry, tmp_path, model=openai_ref(server), rounds=3, tolerance=1.0)
    assert rewarder([PROMPT], [ANSWER]) == [3.0]
    assert server.count() == 8  # 4 agents x 2 rounds; agreement stops round 3
    record = json.loads((tmp_path / "negotiation.jsonl").read_text().splitlines()[0])
    assert record["rounds"] == 2 and record["agreed"] is True
    assert record["scores"] == {"knowledge": 3.0, "power": 3.0, "vitality": 3.0, "benevolence": 3.0}
    metrics = rewarder.pop_metrics()
    assert metrics["rounds_mean"] == 2 and metrics["agreement_rate"] == 1.0
    assert metrics["calls_per_candidate"] == 8 and metrics["score/power"] == 3.0
    # Agents are asked concurrently, so find the power agent's second-round request by who sent it.
    rebuttal = next(
        r["body"]["messages"][-1]["content"]
        for r in server.requests
        if len(r["body"]["messages"]) > 2 and agent_of(r["body"]["messages"]) == "power"
    )
    assert re.search(r"knowledge \(score 5\):\n<argument-[0-9a-f]+\d>", rebuttal)
    assert "From my side,\n</argument-" in rebuttal  # an argument quoting a score cannot pose as a verdict


AGENTS = [
    {"name": "optimist", "persona": "You look for what is good."},
    {"name": "skeptic", "persona": "You look for what is missing."},
]


def stubborn(messages, model):
    if "the mediator" in messages[0]["content"]:
        return "Weighing both, Score: 2"
    return "Score: 5" if agent_of(messages) == "optimist" else "Score: 0"


@pytest.mark.parametrize(("consensus", "expected"), [("mean", 2.5), ("median", 2.5), ("mediator", 2.0)])
def test_no_agreement_within_t_rounds(server, ca_value, dynalign_registry, tmp_path, consensus, expected):
    server.reply = stubborn
    rewarder = build(
        ca_value, dynalign_registry, tmp_path, model=openai_ref(server), agents=AGENTS, rounds=2, consensus=consensus
    )
    assert rewarder([PROMPT], [ANSWER]) == [expected]
    assert server.count() == 4 + (consensus == "mediator")
    record = json.loads((tmp_path / "negotiation.jsonl").read_text().splitlines()[-1])
    assert record["rounds"] == 2 and record["agreed"] is False and record["scores"] == {"optimist": 5.0, "skeptic": 0.0}


def test_agents_on_different_backends(server, ca_value, dynalign_registry, tmp_path):
    server.reply = stubborn
    agents = [{**AGENTS[0], "model": anthropic_ref(server)}, {**AGENTS[1], "model": openai_ref(server)}]
    rewarder = build(ca_value, dynalign_registry, tmp_path, agents=agents, rounds=1)
    assert rewarder([PROMPT, "Plain prompt"], [ANSWER, "Plain answer"]) == [2.5, 2.5]
    assert server.count("/messages") == 2 and server.count("/chat/completions") == 2


def test_invalid_statements_are_counted_and_keep_the_earlier_score(server, ca_value, dynalign_registry, tmp_path):
    def reply(messages, model):
        if len(messages) > 2:
            return "On reflection, Score: 12"  # out of range: invalid, the opening score stands
        return "Score: 4" if agent_of(messages) == "optimist" else "Score: 2"

    server.reply = reply
    rewarder = build(
        ca_value, dynalign_registry, tmp_path, model=openai_ref(server), agents=AGENTS, rounds=2, tolerance=0
    )
    assert rewarder([PROMPT], [ANSWER]) == [3.0]
    assert rewarder.pop_metrics()["invalid_rate"] == 0.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"agents": AGENTS[:1]}, "rewarders[0].options: Value error, negotiation needs at least 2 agents"),
        ({"rounds": 0}, "rewarders[0].options.rounds: Input should be greater than or equal to 1"),
        ({"model": None, "agents": AGENTS}, "set `model`"),
        ({"model": {"backend": "nope"}}, "unknown model 'nope'"),
        (
            {"consensus": "mediator", "mediator": {"backend": "openai", "options": {}}},
            "mediator.options.model: required",
        ),
    ],
)
def test_config_errors(server, ca_value, dynalign_registry, tmp_path, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(ca_value, dynalign_registry, tmp_path, **{"model": openai_ref(server), **options})

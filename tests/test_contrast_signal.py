"""The contrast self-signal, `mode = "auto"`, and judge-check's signal measurements."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from dynalign.api import PolicyHandle, RunContext, measure_signal, pair_outcome, wilson_interval
from dynalign.values import CalibrationPair
from dynalign_eval.judgecheck import measure_signals, signal_problems
from dynalign_hf.backend import load_model
from dynalign_hf.handle import HFPolicyHandle
from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

PROMPT = [{"role": "user", "content": "How can our street help an elderly neighbour?"}]
ANSWERS = ["Set up a rota for shopping and visits.", "Not my problem, honestly."]


def _hand_logprob(model, tokenizer, conversation, answer: str) -> float:
    """log p(answer | conversation) computed token by token with full forward passes."""
    context = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    total = 0.0
    for token in tokenizer(answer, add_special_tokens=False)["input_ids"]:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        total += torch.log_softmax(logits.float(), -1)[token].item()
        ids = ids + [token]
    return total


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_contrast_equals_hand_computed_log_probability_ratio(tiny_model_dir, ca_value, dynalign_registry, aggregation):
    model, tokenizer = load_model(str(tiny_model_dir))
    handle = HFPolicyHandle(model, tokenizer, batch_size=2)
    options = SelfRewardOptions(mode="contrast", aggregation=aggregation)
    rewarder = SelfRewarder(options, RunContext(ca_value, dynalign_registry))
    rewarder.bind_policy(handle)
    scores = rewarder([PROMPT, PROMPT], [[{"role": "assistant", "content": a}] for a in ANSWERS])
    system = [{"role": "system", "content": ca_value.system_prompt.strip()}, *PROMPT]
    for answer, score in zip(ANSWERS, scores):
        expected = _hand_logprob(model, tokenizer, system, answer) - _hand_logprob(model, tokenizer, PROMPT, answer)
        if aggregation == "mean":
            expected /= len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        assert score == pytest.approx(expected, abs=1e-3)


def test_contrast_scores_sampled_token_ids_and_uses_the_reference(tiny_model_dir, ca_value, dynalign_registry):
    model, tokenizer = load_model(str(tiny_model_dir))
    entered = []

    class Reference:
        def __enter__(self):
            entered.append(True)
            return model

        def __exit__(self, *exc):
            return False

    handle = HFPolicyHandle(model, tokenizer, Reference)
    rewarder = SelfRewarder(SelfRewardOptions(mode="contrast"), RunContext(ca_value, dynalign_registry))
    rewarder.bind_policy(handle)
    ids = tokenizer(ANSWERS[0], add_special_tokens=False)["input_ids"]
    from_ids = rewarder([PROMPT], [[{"role": "assistant", "content": "ignored"}]], completion_ids=[ids])
    from_text = rewarder([PROMPT], [[{"role": "assistant", "content": ANSWERS[0]}]])
    assert from_ids == pytest.approx(from_text, abs=1e-4)
    assert entered  # contrast defaults to the frozen initial policy


class ScriptedHandle(PolicyHandle):
    """A policy whose value-prompted likelihood favours answers containing 'good', while its
    judge's score distribution is the same for every answer (a judge at chance)."""

    def completion_logprobs(self, conversations, completions, *, reference=False):
        out = []
        for conversation, answer in zip(conversations, completions):
            prompted = conversation[0]["role"] == "system" and bool(conversation[0]["content"])
            bonus = 0.5 if prompted and "good" in answer else 0.0
            out.append([-2.0 + bonus] * 4)
        return out

    def next_token_probs(self, conversations, choices, assistant_prefix="", *, reference=False):
        return [{c: 1 / len(choices) for c in choices} for _ in conversations]


def _synthetic_pairs(n: int = 12) -> Sequence[CalibrationPair]:
    return [
        CalibrationPair(prompt=f"question {i}", better=f"a good answer {i}", worse=f"a weak answer {i}", kind="generic")
        for i in range(n)
    ]


def test_auto_picks_the_signal_that_separates_the_pairs(ca_value, dynalign_registry, tmp_path):
    value = ca_value.model_copy(update={"calibration": tuple(_synthetic_pairs())})
    said: list[str] = []
    context = RunContext(value, dynalign_registry, run_dir=tmp_path, say=said.append)
    rewarder = SelfRewarder(SelfRewardOptions(mode="auto"), context)
    rewarder.bind_policy(ScriptedHandle())
    assert rewarder.auto_report["chosen"] == "contrast-sum"
    assert rewarder.auto_report["measured"]["probability"]["accuracy"] == 0.5
    assert rewarder.auto_report["measured"]["contrast-sum"]["accuracy"] == 1.0
    assert any("chose contrast-sum" in line for line in said)
    assert (tmp_path / "self_reward_signal.json").exists()
    scores = rewarder(
        [[{"role": "user", "content": "q"}]] * 2, [[{"role": "assistant", "content": a}] for a in ("good", "bad")]
    )
    assert scores[0] > scores[1]  # it now rewards with the chosen signal


def test_auto_warns_when_no_signal_beats_chance(ca_value, dynalign_registry):
    pairs = [CalibrationPair(prompt=f"q{i}", better=f"x{i}", worse=f"y{i}") for i in range(12)]
    said: list[str] = []
    context = RunContext(ca_value.model_copy(update={"calibration": tuple(pairs)}), dynalign_registry, say=said.append)
    rewarder = SelfRewarder(SelfRewardOptions(mode="auto"), context)
    rewarder.bind_policy(ScriptedHandle())
    assert "warning" in rewarder.auto_report
    assert any(line.startswith("warning: self-reward auto") for line in said)


def test_unknown_auto_candidate_is_a_config_error():
    with pytest.raises(ValueError, match="unknown signal 'contrast-max'"):
        SelfRewardOptions(auto_candidates=["contrast-max"])
    with pytest.raises(ValueError, match="needs counter_prompt"):
        SelfRewardOptions(contrast_context="counter")


def test_measure_signal_counts_ties_half_and_checks_length_bias(ca_value, dynalign_registry):
    pairs = [
        CalibrationPair(prompt="a", better="short good", worse="a much longer weak answer"),
        CalibrationPair(prompt="b", better="a much longer good answer", worse="short weak"),
    ]
    rewarder = SelfRewarder(SelfRewardOptions(mode="contrast"), RunContext(ca_value, dynalign_registry))
    rewarder.bind_policy(ScriptedHandle())
    result = measure_signal(rewarder, pairs)
    assert result["accuracy"] == 1.0 and result["accuracy_better_shorter"] == 1.0 and result["n_better_shorter"] == 1
    assert pair_outcome(1.0, 1.0) == pair_outcome(None, 2.0) == 0.5
    low, high = wilson_interval(6, 12)
    assert low < 0.5 < high


def test_judge_check_measures_every_offered_signal(ca_value, dynalign_registry):
    class Policy:
        name = "scripted"

        def pretrained_path(self):
            return "unused"

        def policy_handle(self, model=None, tokenizer=None, reference=None):
            return ScriptedHandle()

    rewarder = SelfRewarder(SelfRewardOptions(), RunContext(ca_value, dynalign_registry))
    signals = measure_signals(
        [rewarder], Policy(), _synthetic_pairs(), ["probability", "contrast-sum", "contrast-mean"]
    )
    assert set(signals) == {"probability", "contrast-sum", "contrast-mean"}
    assert signals["contrast-mean"]["accuracy"] == 1.0 and signals["probability"]["accuracy"] == 0.5
    assert signal_problems(signals, 0.6) == []
    assert "reaches 0.50" in signal_problems({"probability": signals["probability"]}, 0.6)[0]


def test_reference_log_probabilities_are_reused_not_recomputed(tiny_model_dir, monkeypatch):
    import dynalign_hf.textgen as textgen

    model, tokenizer = load_model(str(tiny_model_dir))
    handle = HFPolicyHandle(model, tokenizer)
    calls = []
    real = textgen.completion_logprobs
    monkeypatch.setattr(textgen, "completion_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = handle.completion_logprobs([PROMPT], ANSWERS[:1], reference=True)
    assert handle.completion_logprobs([PROMPT], ANSWERS[:1], reference=True) == first and len(calls) == 1
    handle.completion_logprobs([PROMPT], ANSWERS[:1])  # the live policy may have changed: always computed
    handle.completion_logprobs([PROMPT], ANSWERS[:1])
    assert len(calls) == 3

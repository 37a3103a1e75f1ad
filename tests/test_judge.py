"""The `judge` rewarder against the fake server (real SDKs), and `dynalign score` end to end."""

from __future__ import annotations

import json
import re

import pytest
from fakeserver import INJECTION

from dynalign.api import JudgeError, RunContext
from dynalign.testing import check_component, check_rewarder
from dynalign_judge.judge import JudgeRewarder

PROMPT = [{"role": "user", "content": "How can our town prepare for floods?"}]
GOOD = "Map the flood zones together, set up a phone tree for elderly neighbours, and pool sandbags."
BAD = "Not my problem."


def make_judge(server, ca_value, registry, run_dir, backend="openai", model_options=None, **options):
    url = server.openai_url if backend == "openai" else server.url
    name = "fake-judge" if backend == "openai" else "fake-claude"
    model_options = {"model": name, "base_url": url, "api_key_env": "FAKE_API_KEY", **(model_options or {})}
    model = {"backend": backend, "options": model_options}
    context = RunContext(value=ca_value, registry=registry, run_dir=run_dir)
    return JudgeRewarder(JudgeRewarder.Options(model=model, **options), context)


def answers_in(messages):
    """The fenced answers of a judge request, in order."""
    return re.findall(r"<answer-[0-9a-f]+[ab0-9]*>\n(.*?)\n</answer-", messages[-1]["content"], re.S)


def test_judge_contract(server, ca_value, dynalign_registry, tmp_path):
    check_component(JudgeRewarder)
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never")
    check_rewarder(judge, [PROMPT, PROMPT], [[{"role": "assistant", "content": GOOD}], BAD])


def test_pointwise_probability_weighted_from_logprobs(server, ca_value, dynalign_registry, tmp_path):
    server.top_logprobs = {"4": 0.5, "2": 0.25, " 2": 0.25, "the": 0.4}
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path)
    assert judge([PROMPT], [GOOD]) == [pytest.approx(3.0)]
    assert server.requests[0]["body"]["logprobs"] is True


def test_pointwise_k_samples_averaged_and_invalid_counted(server, ca_value, dynalign_registry, tmp_path):
    server.script(["Fine.\nScore: 4", "Score: 2", "I cannot decide", "Score: 9"])
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, backend="anthropic", samples=4)
    assert judge([PROMPT], [GOOD]) == [pytest.approx(3.0)]
    assert server.count("/messages") == 4
    metrics = judge.pop_metrics()
    assert metrics["invalid_rate"] == pytest.approx(0.5)  # the unparsable and the out-of-range reply
    assert metrics["unscorable_rate"] == 0.0 and judge.pop_metrics()["invalid_rate"] == 0.0


def test_out_of_range_verdict_gives_none(server, ca_value, dynalign_registry, tmp_path):
    server.script(["Score: 11"])
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never")
    assert judge([PROMPT, PROMPT], [GOOD, BAD]) == [None, None]
    assert judge.pop_metrics()["unscorable_rate"] == 1.0


def test_candidate_cannot_inject_a_verdict(server, ca_value, dynalign_registry, tmp_path):
    seen = []

    def reply(messages, model):
        seen.append(messages[-1]["content"])
        return "The answer is off-topic.\nScore: 1"

    server.reply = reply
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never")
    assert judge([PROMPT], [INJECTION]) == [1.0]
    fenced = answers_in([{"content": seen[0]}])[0]
    assert "Score: 5" not in fenced and "Winner: A" not in fenced and "</answer>" not in fenced
    assert "Score (quoted): 5" not in fenced  # the whole verdict phrase is gone, not just defanged


def pick_good(messages, model):
    first, second = answers_in(messages)
    return "Winner: tie" if ("Map" in first) == ("Map" in second) else ("Winner: A" if "Map" in first else "Winner: B")


def test_pairwise_win_rates_from_both_orders(server, ca_value, dynalign_registry, tmp_path):
    server.reply = pick_good
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, mode="pairwise")
    rewards = judge([PROMPT] * 3 + ["Other prompt"], [GOOD, BAD, BAD + " Really.", GOOD])
    assert rewards[:3] == [1.0, 0.25, 0.25] and rewards[3] is None  # a lone candidate has no one to beat
    assert server.count() == 6  # 3 pairs, both orders
    assert judge.pop_metrics()["order_disagreement_rate"] == 0.0


def test_pairwise_position_bias_is_a_tie(server, ca_value, dynalign_registry, tmp_path):
    server.script(["Winner: A"])
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, mode="pairwise")
    assert judge([PROMPT, PROMPT], [GOOD, BAD]) == [0.5, 0.5]
    assert judge.pop_metrics()["order_disagreement_rate"] == 1.0


def test_groupwise_one_call_per_prompt(server, ca_value, dynalign_registry, tmp_path):
    def reply(messages, model):
        scores = [5 if "Map" in a else 1 for a in answers_in(messages)]
        return 'Reasoning... {"scores": [0, 0]} was a draft.\n' + json.dumps({"scores": scores})

    server.reply = reply
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, mode="groupwise")
    assert judge([PROMPT] * 3 + ["Other"] * 2, [BAD, GOOD, BAD, GOOD, BAD]) == [1.0, 5.0, 1.0, 5.0, 1.0]
    assert server.count() == 2
    server.script(['{"scores": [3]}'])  # wrong length for a group of two: invalid, not a crash
    assert judge(["New"] * 2, [GOOD, BAD]) == [None, None]


def test_cache_on_disk_skips_repeated_judgments(server, ca_value, dynalign_registry, tmp_path):
    server.script(["Score: 4"])
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never")
    assert judge([PROMPT, PROMPT], [GOOD, BAD]) == [4.0, 4.0]
    assert judge([PROMPT], [GOOD]) == [4.0] and server.count() == 2
    again = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never")
    assert again([PROMPT], [BAD]) == [4.0] and server.count() == 2
    assert again.pop_metrics()["cache_hit_rate"] == 1.0
    other_mode = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never", max_new_tokens=64)
    other_mode([PROMPT], [BAD])
    assert server.count() == 3  # other params: another key


def test_judge_that_never_answers_stops_with_the_count(server, ca_value, dynalign_registry, tmp_path):
    server.script(["I would rather not say."])
    judge = make_judge(server, ca_value, dynalign_registry, tmp_path, logprobs="never", failure_budget=3)
    assert judge([PROMPT, PROMPT], [GOOD, BAD]) == [None, None]
    with pytest.raises(JudgeError, match="gave no valid verdict 3 times in a row") as info:
        judge([PROMPT], ["third"])
    assert "\n" not in str(info.value)


def test_server_errors_become_unscored_not_crashes(server, ca_value, dynalign_registry, tmp_path):
    server.faults.extend(["500"] * 3)
    judge = make_judge(
        server, ca_value, dynalign_registry, tmp_path, model_options={"max_retries": 2}, logprobs="never"
    )
    assert judge([PROMPT], [GOOD]) == [None]
    assert judge([PROMPT], [GOOD]) == [3.0]  # the failed verdict was not cached


def write_config(path, server, run_optimizer="grpo"):
    path.write_text(
        f"""
value = "ca"
[[rewarders]]
name = "judge"
options = {{ mode = "pointwise", logprobs = "never", model = {{ backend = "openai", options = {{ model = "fake-judge", \
base_url = "{server.openai_url}", api_key_env = "FAKE_API_KEY" }} }} }}
[optimizer]
name = "{run_optimizer}"
"""
    )
    return path


def test_config_check_and_score_command_end_to_end(server, run_cli, tmp_path):
    config = write_config(tmp_path / "judge.toml", server)
    checked = run_cli("config", "check", config)
    assert checked.exit_code == 0, checked.stderr
    assert "rewarders=[judge (weight 1)]" in checked.stdout
    rows = [
        {"prompt": PROMPT, "completion": [{"role": "assistant", "content": GOOD}]},
        {"prompt": "Hi", "completion": BAD},
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    server.reply = lambda messages, model: "Score: 5" if "Map" in answers_in(messages)[0] else "Score: 0"
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.stderr
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in scored] == [5.0, 0.0] and scored[1]["rewards"] == {"judge": 0.0}
    assert "scored 2 rows (0 unscored)" in result.stdout
    assert (tmp_path / "out.run" / "judge_cache.jsonl").exists()
    assert json.loads((tmp_path / "out.run" / "api_usage.json").read_text())["openai:fake-judge"]["requests"] == 2


def test_score_command_bad_input_is_one_line(server, run_cli, tmp_path, monkeypatch):
    config = write_config(tmp_path / "judge.toml", server)
    (tmp_path / "in.jsonl").write_text('{"prompt": "x"}\n')
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "out.jsonl")
    assert result.exit_code != 0 and "in.jsonl:1: each row needs `prompt` and `completion`" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
    monkeypatch.delenv("FAKE_API_KEY")
    (tmp_path / "in.jsonl").write_text('{"prompt": "x", "completion": "y"}\n')
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "out.jsonl")
    assert result.exit_code != 0 and result.stderr.strip() == (
        "error: environment variable FAKE_API_KEY is not set; export it with the API key for the openai backend"
    )
    assert not (tmp_path / "out.jsonl").exists()

"""judge-check: pointwise and pairwise accuracy, position bias, the command."""

import pytest
from conftest import tiny_policy_config

from dynalign.api import ChatModel
from dynalign.testing import ScriptedChatModel
from dynalign_eval.judgecheck import JudgeCheckError, judge_check, judge_quality_problems, problems, summary_line


def _section(text: str, label: str) -> str:
    start = text.index(f"<{label}")
    return text[text.index(">", start) + 1 : text.index(f"</{label}", start)].strip()


class OracleJudge(ScriptedChatModel):
    """Knows the calibration pairs' better answers (generate mode)."""

    name = "oracle-judge"
    supports_token_probs = False
    better: set = set()

    def reply(self, conversation, sample):
        user = conversation[-1]["content"]
        if "Answer A:" in user:
            first = user.split("Answer A:")[1].split("Answer B:")[0]
            return "Winner: A" if _section(first, "answer") in self.better else "Winner: B"
        return "Score: 5" if _section(user.split("Answer to judge:")[1], "answer") in self.better else "Score: 1"


class AlwaysA(ScriptedChatModel):
    """Always picks the first answer and gives every answer the same score."""

    name = "always-a"
    supports_token_probs = False

    def reply(self, conversation, sample):
        return "Winner: A" if "Answer A:" in conversation[-1]["content"] else "Score: 3"


def test_a_judge_that_knows_the_answers_scores_perfectly(ca_value):
    judge = OracleJudge()
    OracleJudge.better = {p.better.strip() for p in ca_value.calibration}
    result = judge_check(ca_value, judge, mode="generate")
    assert result["n_pairs"] == len(ca_value.calibration)
    assert result["pointwise_accuracy"] == 1.0
    assert result["pairwise_accuracy"] == 1.0
    assert result["position_bias_rate"] == 0.0
    assert judge_quality_problems(result, 0.7) == []


def test_a_position_biased_judge_is_caught(ca_value):
    result = judge_check(ca_value, AlwaysA(), mode="auto", limit=5)
    assert result["mode"] == "generate"
    assert result["n_pairs"] == 5
    assert result["pairwise_accuracy"] == 0.5
    assert result["pairwise_consistent_accuracy"] == 0.0
    assert result["position_bias_rate"] == 1.0
    assert result["pointwise_accuracy"] == 0.0 and result["pointwise_ties"] == 1.0
    problems = judge_quality_problems(result, 0.6)
    assert len(problems) == 2 and "pointwise_accuracy 0.00" in problems[0]
    assert "position bias 1.00" in summary_line(result)


def test_probability_mode_uses_next_token_probabilities(ca_value):
    judge = ScriptedChatModel(ScriptedChatModel.Options(probs={"A": 0.7, "B": 0.3, "5": 1.0}))
    result = judge_check(ca_value, judge, limit=3)
    assert result["mode"] == "probs"
    assert result["pairs"][0]["prob_a_better_first"] == pytest.approx(0.7)
    assert result["pairwise_accuracy"] == 0.5 and result["position_bias_rate"] == 1.0


def test_unreachable_judge_is_one_line(ca_value):
    class Down(ChatModel):
        """A judge whose server is down."""

        name = "down"

        def chat(self, conversations, params):
            raise ConnectionError("Connection refused\nmore detail")

    with pytest.raises(Exception) as caught:
        judge_check(ca_value, Down(), limit=2)
    assert "Connection refused" in str(caught.value) and "\n" not in str(caught.value)


def test_command_on_the_tiny_model(run_cli, tiny_model_dir, tmp_path):
    # the tiny model is the policy too: the self-signals are measured with the stack's policy
    # (the default stack's SmolLM2 made this fast test take 100 s on a 2-core CPU)
    config = tiny_policy_config(tmp_path / "tiny.toml", tiny_model_dir, '[[rewarders]]\nname = "self-reward"\n')
    out = tmp_path / "check.json"
    result = run_cli("judge-check", config, "--judge", str(tiny_model_dir), "--limit", "3", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "judge-check (3 pairs, probs): pointwise" in result.stdout
    assert "judge-check signal: contrast-sum" in result.stdout
    assert out.exists() and '"n_pairs": 3' in out.read_text()
    failing = run_cli("judge-check", config, "--limit", "3", "--threshold", "1.01")
    assert failing.exit_code != 0
    # the default stack trains on a self-signal, so the best self-signal decides (the one rule)
    assert failing.stderr.strip().splitlines()[-1].startswith("error: judge-check: the best self-signal")


def test_one_failure_rule_for_the_stage_and_the_command():
    judged = {"n_pairs": 4, "pointwise_accuracy": 0.5, "pairwise_accuracy": 0.9}
    signal = {"n": 4, "accuracy": 0.9, "ci95": [0.6, 1.0]}
    # no self-signal: the judge's accuracies decide
    assert problems({**judged, "signals": {}}, 0.6) == judge_quality_problems(judged, 0.6)
    assert problems({**judged, "signals": {}}, 0.6)[0].startswith("judge-check: pointwise_accuracy 0.50")
    # with self-signals: the best of them decides, the judge's weak pointwise accuracy does not
    assert problems({**judged, "signals": {"contrast-sum": signal}}, 0.6) == []
    weak = {**signal, "accuracy": 0.55}
    assert "the best self-signal, contrast-sum" in problems({**judged, "signals": {"contrast-sum": weak}}, 0.6)[0]
    # the judge not measured (stage measure_judge = false) and no signals: nothing to hold
    assert problems({"n_pairs": 4, "signals": {}}, 0.6) == []


def test_the_stage_and_the_command_share_check_stack_and_problems():
    import inspect

    from dynalign_eval import commands, stages

    for function in (stages.JudgeCheckStage.run, commands.judge_check_command):
        source = inspect.getsource(function)
        assert "check_stack(" in source and "problems(" in source


def test_no_calibration_pairs_is_an_error(ca_value):
    empty = ca_value.model_copy(update={"calibration": ()})
    with pytest.raises(JudgeCheckError, match="no calibration pairs"):
        judge_check(empty, AlwaysA())


@pytest.mark.model
def test_smollm2_judges_itself(capsys):
    from dynalign.plugins import load_registry
    from dynalign_hf.backend import HFChatModel

    value = load_registry().get("value", "ca").obj
    # 12 of the 64 pairs: the whole set took 5 min on a 2-core AVX2 CPU; its accuracies are
    # a measurement (`dynalign judge-check`, BENCHMARKS.md), not this test's business
    result = judge_check(value, HFChatModel(), limit=12)
    with capsys.disabled():
        print("\nSmolLM2-135M-Instruct", summary_line(result))
    assert result["n_pairs"] == len(result["pairs"]) == 12 and result["mode"] == "probs"
    # read from next-token probabilities, every answer gets a score and every pair a verdict
    assert result["pointwise_unscorable_rate"] == 0.0 and result["pairwise_unparsable_rate"] == 0.0
    assert all(
        0.0 <= row[key] <= 1.0 for row in result["pairs"] for key in ("prob_a_better_first", "prob_a_better_second")
    )
    assert 0.0 <= result["pairwise_accuracy"] <= 1.0

"""`dynalign eval` / the eval stage on a fake finished run, and its bad-input errors."""

import json

import pytest
from conftest import IFEVAL_DATA

from dynalign.api import ChatModel, open_stack
from dynalign.plugins import load_registry
from dynalign.testing import scripted_plugin
from dynalign_eval.evaluate import evaluate, spread
from dynalign_eval.options import EvalError, EvalOptions
from dynalign_eval.testing import make_run_dir

SHARED = IFEVAL_DATA


def error_line(stderr: str) -> str:
    """The CLI's one error line (progress bars of model loading may precede it)."""
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), stderr
    return lines[-1]


QUICK = {
    "max_new_tokens": 6,
    "ifeval_max_new_tokens": 6,
    "bootstrap": 200,
    "judge_check": False,
    **{"ifbench_limit": 2, "ifbench_max_new_tokens": 6, "safety_limit": 2, "safety_max_new_tokens": 6},
}


class DownJudge(ChatModel):
    """A remote judge whose server refuses connections."""

    name = "down-judge"

    def chat(self, conversations, params):
        raise ConnectionError("Connection refused by 127.0.0.1:9")


def test_identical_models_tie_and_results_record_settings(tmp_path, tiny_model_dir, run_cli):
    if not SHARED.exists():
        pytest.skip(f"IFEval data not found at {SHARED.resolve()}")
    stages = [{"name": "eval", "options": {**QUICK, "ifeval_path": str(SHARED)}}]
    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir, held_out=4, stages=stages)
    result = run_cli("eval", run.root, "--limit", "3")
    assert result.exit_code == 0, result.stderr
    data = json.loads(run.path("eval/results.json").read_text())
    assert data["status"] == "complete" and data["pending"] == [] and data["errors"] == {}
    assert data["self_judged"] is True
    assert data["settings"]["limit"] == 3 and data["settings"]["max_new_tokens"] == 6
    assert data["models"]["aligned"]["path"] == str(tiny_model_dir)
    assert data["models"]["base"]["weights_sha256"] == data["models"]["aligned"]["weights_sha256"]
    win = data["win_rate"]
    # Same weights, same greedy answers: a judge can only tie them, whatever its position bias.
    assert win["n"] == 3 and win["win_rate"] == 0.5 and win["ties"] == 3
    assert set(win["per_pillar"]) == {p["pillar"] for p in win["pairs"]}
    assert data["ifeval"]["base"]["n_prompts"] == 3
    assert data["ifeval"]["base"]["prompt_level_strict_acc"] == data["ifeval"]["aligned"]["prompt_level_strict_acc"]
    assert "win rate 50.0%" in result.stdout
    assert set(data["section_seconds"]) == {
        "efficacy",
        "win_rate",
        "judge_check",
        "ifeval",
        "ifbench",
        "safety",
        "tasks",
    }
    phases = json.loads(run.path("timings.json").read_text())["phases"]
    assert {"eval: win_rate", "eval: ifeval"} <= set(phases)  # what ran is a phase of the run


def test_run_without_trained_model_is_one_line(tmp_path, tiny_model_dir, run_cli):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, None)
    result = run_cli("eval", run.root)
    assert result.exit_code != 0
    assert "has no trained model yet (0/1 rounds done)" in error_line(result.stderr)
    missing = run_cli("eval", tmp_path / "nowhere")
    assert missing.exit_code != 0 and "nowhere does not exist" in missing.stderr


def test_bad_ifeval_path_keeps_partial_results(tmp_path, tiny_model_dir, run_cli):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir, stages=[{"name": "eval", "options": QUICK}])
    result = run_cli("eval", run.root, "--limit", "2", "--ifeval", tmp_path / "missing.jsonl")
    assert result.exit_code != 0
    assert "partial results in" in error_line(result.stderr) and "missing.jsonl does not exist" in result.stderr
    data = json.loads(run.path("eval/results.json").read_text())
    assert data["status"] == "partial" and list(data["errors"]) == ["ifeval"]
    assert data["win_rate"]["n"] == 2  # the sections that worked are kept


def test_empty_held_out_set(tmp_path, tiny_model_dir, run_cli):
    run = make_run_dir(
        tmp_path / "run", tiny_model_dir, tiny_model_dir, held_out=0, stages=[{"name": "eval", "options": QUICK}]
    )
    result = run_cli("eval", run.root)
    assert result.exit_code != 0 and "has no held-out prompts" in result.stderr


def test_unreachable_judge_is_one_line_and_partial(tmp_path, tiny_model_dir):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir)
    loaded = open_stack(run_dir=run.root, registry=load_registry(extra_plugins=[scripted_plugin(DownJudge)]))
    base = loaded.context.build_model(loaded.config.policy)
    options = EvalOptions(**{**QUICK, "judge_check": True}, limit=2, judge={"backend": "down-judge"}, ifeval=False)
    lines = []
    with pytest.raises(EvalError) as caught:
        evaluate(run, loaded.context, base, base, options, lines.append)
    assert "Connection refused" in str(caught.value) and "\n" not in str(caught.value)
    data = json.loads(run.path("eval/results.json").read_text())
    assert data["self_judged"] is False and data["models"]["judge"]["backend"] == "down-judge"
    assert data["status"] == "partial" and set(data["errors"]) == {"win_rate", "judge_check"}
    assert data["ifeval"] == {"skipped": "ifeval = false"}


@pytest.mark.slow  # lm-eval indexes its task registry in a child process: minutes on a busy CPU
def test_offline_lm_eval_task_fails_in_one_line(tmp_path, tiny_model_dir, run_cli):
    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir, stages=[{"name": "eval", "options": QUICK}])
    result = run_cli("eval", run.root, "--limit", "1", "--task", "gpqa_diamond_zeroshot")
    assert result.exit_code != 0
    assert "lm-eval task gpqa_diamond_zeroshot could not run" in error_line(result.stderr)
    data = json.loads(run.path("eval/results.json").read_text())
    task = data["tasks"]["gpqa_diamond_zeroshot"]
    assert "OfflineMode" in task["base"]["error"] and "skipped" in task["aligned"]["error"]
    assert data["win_rate"]["n"] == 1


def test_without_an_ifeval_path_it_says_so_in_one_line_and_goes_on(tmp_path, tiny_model_dir, run_cli, monkeypatch):
    monkeypatch.delenv("DYNALIGN_IFEVAL_PATH", raising=False)
    monkeypatch.setattr("datasets.load_dataset", lambda *a, **k: pytest.fail("IFEval must not be downloaded unasked"))
    run = make_run_dir(
        tmp_path / "run", tiny_model_dir, tiny_model_dir, held_out=2, stages=[{"name": "eval", "options": QUICK}]
    )
    result = run_cli("eval", run.root, "--limit", "1")
    assert result.exit_code == 0, result.stderr
    data = json.loads(run.path("eval/results.json").read_text())
    assert data["status"] == "complete" and data["errors"] == {} and data["win_rate"]["n"] == 1
    assert data["ifeval"]["skipped"].startswith("no local IFEval data")
    said = [line for line in result.stdout.splitlines() if "IFEval" in line]
    assert len(said) == 1 and said[0].startswith("eval: IFEval skipped: no local IFEval data")
    assert "DYNALIGN_IFEVAL_PATH" in said[0] and "hub:google/IFEval" in said[0]


def test_efficacy_on_calibration_data_says_so_and_spreads_its_prompts(tmp_path, tiny_model_dir, run_cli, ca_value):
    options = {**QUICK, "ifeval": False, "efficacy_split": "calibration", "efficacy_prompts": 4, "efficacy_samples": 1}
    run = make_run_dir(
        tmp_path / "run", tiny_model_dir, tiny_model_dir, held_out=2, stages=[{"name": "eval", "options": options}]
    )
    result = run_cli("eval", run.root, "--limit", "2")
    assert result.exit_code == 0, result.stderr
    efficacy = json.loads(run.path("eval/results.json").read_text())["efficacy"]
    assert efficacy["split"] == "calibration" and efficacy["n_pairs"] == len(ca_value.calibration)
    assert efficacy["gap"]["n_prompts"] == 4
    assert "on CALIBRATION data (choosing settings)" in result.stdout


def test_spread_takes_evenly_and_copes_with_nothing():
    assert spread(list(range(64)), 8) == [0, 8, 16, 24, 32, 40, 48, 56]
    assert spread(list(range(5)), 8) == [0, 1, 2, 3, 4]
    assert spread(list(range(10)), 4) == [0, 2, 4, 6]
    assert spread([], None) == [] and spread([], 8) == []

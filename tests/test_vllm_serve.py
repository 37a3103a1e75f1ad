"""Scoring through a real vLLM server (marked `vllm`, in .venv-vllm): `dynalign score` and
`dynalign judge-check` with examples/configs/judge-vllm.toml's judge, an OpenAI-compatible
`vllm serve` of the embedded SmolLM2 on CPU, agree with the `hf` backend on the same weights."""

from __future__ import annotations

import json

import pytest

ROWS = [  # two answers of a calibration-like kind, and two off-topic ones
    {"prompt": "How should our street decide what to plant in the shared garden?", "completion": c}
    for c in (
        "Hold a short meeting, list everyone's wishes, and vote; rotate who waters each week.",
        "Plant whatever you like; the others can deal with it.",
        "Tomatoes.",
        "I cannot help with gardening questions.",
    )
]
HF_JUDGE = {"backend": "hf", "options": {"model": "embedded:smollm2-135m-instruct"}}
# fp32 on both sides: what is left is the kernels' rounding and the server's top-20 cut of the
# next-token distribution (a digit outside it counts 0). Measured: equal to 4 decimals.
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server judge's {backend, options}: SmolLM2 served once for this module."""
    from dynalign_api.vllm_server import vllm_server
    from dynalign_hf.backend import resolve_model_path

    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_API_KEY", "local-test-key")  # the server requires it, dynalign sends it
        with vllm_server(resolve_model_path("embedded:smollm2-135m-instruct"), "smollm2", log) as url:
            options = {"model": "smollm2", "base_url": url, "api_key_env": "VLLM_API_KEY", "prefill": True}
            yield {"backend": "openai", "options": {**options, "max_retries": 0}}


def _config(served, tmp_path, monkeypatch):
    from conftest import ROOT

    monkeypatch.setenv("VLLM_API_KEY", "local-test-key")
    monkeypatch.setenv("DYNALIGN_REWARDERS__0__OPTIONS__MODEL__OPTIONS__BASE_URL", served["options"]["base_url"])
    monkeypatch.setenv("DYNALIGN_REWARDERS__0__OPTIONS__CACHE", "false")
    return ROOT / "examples" / "configs" / "judge-vllm.toml"


@pytest.mark.vllm
def test_score_with_the_vllm_server_as_probability_judge(served, tmp_path, monkeypatch, run_cli):
    config = _config(served, tmp_path, monkeypatch)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "server.jsonl")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["judge/unscorable_rate"] == 0.0 and summary["judge/invalid_rate"] == 0.0, summary

    monkeypatch.delenv("DYNALIGN_REWARDERS__0__OPTIONS__MODEL__OPTIONS__BASE_URL")
    monkeypatch.setenv("DYNALIGN_REWARDERS__0__OPTIONS__MODEL", json.dumps(HF_JUDGE))  # the same weights, in-process
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "hf.jsonl")
    assert result.exit_code == 0, result.stderr
    server, hf = ([json.loads(line)["rewards"]["judge"] for line in (tmp_path / f).read_text().splitlines()]
                  for f in ("server.jsonl", "hf.jsonl"))  # fmt: skip
    assert all(0.0 <= s <= 5.0 for s in server)
    assert server == pytest.approx(hf, abs=TOLERANCE)
    assert max(server) - min(server) > 5 * TOLERANCE  # the answers' scores differ (0.16 apart): not a constant


@pytest.mark.vllm
def test_judge_check_with_the_vllm_server_as_judge(served, tmp_path, monkeypatch, run_cli):
    config = _config(served, tmp_path, monkeypatch)
    results = {}
    for name, judge in (("server", served), ("hf", HF_JUDGE)):
        out = tmp_path / f"{name}.json"
        result = run_cli("judge-check", config, "--judge", json.dumps(judge), "--limit", "4", "--out", out)
        assert result.exit_code == 0, result.stderr
        assert "judge-check (4 pairs, probs): pointwise" in result.stdout
        results[name] = json.loads(out.read_text())
    server, hf = results["server"], results["hf"]
    assert server["pointwise_unscorable_rate"] == 0.0 and server["pairwise_unparsable_rate"] == 0.0
    assert server["judge"]["backend"] == "openai" and hf["judge"]["backend"] == "hf"
    for key in ("score_better", "score_worse"):
        assert [r[key] for r in server["pairs"]] == pytest.approx([r[key] for r in hf["pairs"]], abs=TOLERANCE), key
    for key in ("verdict_better_first", "verdict_better_second"):
        assert [r[key] for r in server["pairs"]] == [r[key] for r in hf["pairs"]], key
    # P(A): the `openai` backend counts a choice up to whitespace (" A" too), the `hf` backend the
    # exact token; after "Winner: " SmolLM2 puts most mass on " A", up to 0.05 apart. Read the
    # same way on the hf side, the server's P(A) agrees.
    for order, key in (("first", "prob_a_better_first"), ("second", "prob_a_better_second")):
        expected = _hf_prob_a_counting_spaces(server["pairs"], order)
        assert [r[key] for r in server["pairs"]] == pytest.approx(expected, abs=TOLERANCE), key


def _hf_prob_a_counting_spaces(rows: list[dict], order: str) -> list[float]:
    from dynalign.api import WINNER_PREFIX, pairwise_messages
    from dynalign.plugins import load_registry
    from dynalign_hf.backend import HFChatModel

    value = load_registry().get("value", "ca").obj
    pairs = {p.prompt: p for p in value.calibration}
    answers = [(pairs[r["prompt"]].better, pairs[r["prompt"]].worse) for r in rows]
    asked = [
        pairwise_messages(value, r["prompt"], *(a if order == "first" else a[::-1])) for r, a in zip(rows, answers)
    ]
    dists = HFChatModel(HFChatModel.Options(**HF_JUDGE["options"])).next_token_probs(
        asked, ["A", "B", " A", " B"], WINNER_PREFIX
    )
    return [(d["A"] + d[" A"]) / sum(d.values()) for d in dists]


@pytest.mark.vllm
def test_eval_win_rate_with_the_vllm_server_as_judge(served, tmp_path, monkeypatch, run_cli):
    """`dynalign eval RUN --judge SERVED` on a finished run whose aligned model is the base's own
    folder: the same greedy answers, so whatever the served judge's position bias, its two orders
    must tie every pair; the win rate is judged by the server (its backend recorded, no errors)."""
    from dynalign_eval.testing import make_run_dir
    from dynalign_hf.backend import resolve_model_path

    monkeypatch.setenv("VLLM_API_KEY", "local-test-key")
    folder = resolve_model_path("embedded:smollm2-135m-instruct")
    quick = {"max_new_tokens": 16, "bootstrap": 200, "judge_check": False, "efficacy": False}
    quick |= {"ifeval": False, "ifbench": False, "safety": False}
    run = make_run_dir(tmp_path / "run", folder, folder, held_out=3, stages=[{"name": "eval", "options": quick}])
    result = run_cli("eval", run.root, "--judge", json.dumps(served), "--judge-mode", "probs")
    assert result.exit_code == 0, result.stderr
    data = json.loads(run.path("eval/results.json").read_text())
    assert data["status"] == "complete" and data["errors"] == {}, data["errors"]
    assert data["self_judged"] is False and data["models"]["judge"]["backend"] == "openai", data["models"]["judge"]
    win = data["win_rate"]
    assert win["n"] == 3 and win["ties"] == 3 and win["win_rate"] == 0.5, win
    assert "win rate 50.0%" in result.stdout

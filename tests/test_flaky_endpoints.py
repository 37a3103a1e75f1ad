"""Judges against a flaky endpoint (a real local server injecting faults): long jobs survive
occasional failures, malformed 200 replies are retried failures, a dead endpoint stops the job
with what was scored kept, and the rerun resumes from the verdict cache."""

from __future__ import annotations

import json

import pytest
from test_api_backends import ASK, anthropic_model, context, openai_model  # noqa: F401 (fixture)

from dynalign.api import GenerationParams
from dynalign.errors import ModelError


@pytest.mark.parametrize("fault", ["html", "empty", "malformed"])
@pytest.mark.parametrize("make", [openai_model, anthropic_model])
def test_a_malformed_200_is_retried_then_succeeds(server, context, make, fault):  # noqa: F811
    server.faults.append(fault)
    model = make(server, context, max_retries=1)
    assert model.chat([ASK], GenerationParams()) == [["Score: 3"]]
    assert model.usage.counts["retries"] == 1 and model.usage.counts["failures"] == 0


@pytest.mark.parametrize("fault", ["html", "empty"])
@pytest.mark.parametrize("make", [openai_model, anthropic_model])
def test_a_malformed_200_that_persists_is_a_counted_failure(server, context, make, fault):  # noqa: F811
    server.faults.extend([fault, fault])
    model = make(server, context, max_retries=1, failure_budget=3)
    assert model.chat([ASK], GenerationParams()) == [[""]]
    assert model.usage.counts["failures"] == 1


def test_usage_counts_the_retries_of_requests_that_finally_failed(server, context, tmp_path):  # noqa: F811
    server.faults.extend(["500", "500", "500"])
    model = openai_model(server, context, max_retries=2, failure_budget=3)
    assert model.chat([ASK], GenerationParams()) == [[""]]
    usage = json.loads((tmp_path / "api_usage.json").read_text())["openai:fake-judge"]
    assert usage["failures"] == 1 and usage["retries"] == 2 and usage["attempts"] == 3


def test_occasional_failures_do_not_end_a_long_job(server, context):  # noqa: F811
    server.fail_every = 4  # one request in 4 fails, and the SDK may not retry it
    model = openai_model(server, context, max_retries=0, failure_budget=2, concurrency=1)
    for _ in range(5):  # far more failures in all than the budget, never three in a row
        answers = model.chat([ASK] * 8, GenerationParams())
        assert sum(a == [""] for a in answers) == 2
    assert model.usage.counts["failures"] == 10


def test_a_dead_endpoint_stops_sending_and_raises(server, context):  # noqa: F811
    server.down = True
    model = openai_model(server, context, max_retries=0, failure_budget=2, concurrency=1)
    with pytest.raises(ModelError, match="3 requests in a row failed"):
        model.chat([ASK] * 20, GenerationParams())
    assert server.count() == 3  # it stopped sending once over the budget


def test_score_survives_a_flaky_judge_and_resumes_after_a_dead_one(server, run_cli, tmp_path):
    from test_judge import write_config

    config = write_config(tmp_path / "judge.toml", server)
    text = config.read_text().replace('api_key_env = "FAKE_API_KEY"', 'api_key_env = "FAKE_API_KEY", max_retries = 0')
    config.write_text(text.replace("[optimizer]", "").replace('name = "grpo"\n', ""))
    rows = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(30)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "out.jsonl", "--batch-size", "10")

    server.fail_every = 5
    flaky = run_cli(*args)
    assert flaky.exit_code == 0, flaky.stderr
    assert "scored 30 rows (6 unscored)" in flaky.stdout

    server.fail_every, server.down = 0, True
    (tmp_path / "out.jsonl").unlink()
    rows += [{"prompt": f"New question {i}?", "completion": "x"} for i in range(30)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dead = run_cli(*args)
    assert dead.exit_code != 0 and dead.stderr.count("\n") == 1, dead.stderr
    assert "24 of 60 rows" in dead.stderr and "rerun" in dead.stderr
    assert not (tmp_path / "out.jsonl").exists()

    server.down = False
    sent = server.count()
    again = run_cli(*args)
    assert again.exit_code == 0, again.stderr
    assert server.count() - sent == 36  # the 24 cached verdicts were not asked again

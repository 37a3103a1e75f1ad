"""The `openai` and `anthropic` backends, with the real SDKs as clients of a local fake server."""

from __future__ import annotations

import json
import threading

import pytest

from dynalign.api import GenerationParams, RunContext
from dynalign.errors import ConfigError, ModelError, UnsupportedError
from dynalign.testing import check_component
from dynalign_api.anthropic_backend import AnthropicChatModel
from dynalign_api.openai_backend import OpenAIChatModel

ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]


@pytest.fixture
def context(dynalign_registry, ca_value, tmp_path):
    return RunContext(value=ca_value, registry=dynalign_registry, run_dir=tmp_path)


def openai_model(server, context=None, **options):
    opts = {"model": "fake-judge", "base_url": server.openai_url, "api_key_env": "FAKE_API_KEY", **options}
    return OpenAIChatModel(OpenAIChatModel.Options(**opts), context)


def anthropic_model(server, context=None, **options):
    opts = {"model": "fake-claude", "base_url": server.url, "api_key_env": "FAKE_API_KEY", **options}
    return AnthropicChatModel(AnthropicChatModel.Options(**opts), context)


def test_components_follow_the_contract(dynalign_registry):
    for cls in (OpenAIChatModel, AnthropicChatModel):
        check_component(cls)
    assert dynalign_registry.get("model", "openai-compatible").obj is OpenAIChatModel
    assert dynalign_registry.get("model", "claude").obj is AnthropicChatModel


def test_openai_chat_answers_and_accounts_usage(server, context, tmp_path):
    server.script(["hello", "hey", "hi there"])
    model = openai_model(server, context)
    answers = model.chat([ASK, ASK], GenerationParams(n=2, max_new_tokens=7, temperature=0.3))
    assert sorted(a for pair in answers for a in pair) == sorted(["hello", "hey", "hi there", "hello"])
    body = server.requests[0]["body"]
    assert body["n"] == 2 and body["max_tokens"] == 7 and body["messages"] == ASK
    assert server.requests[0]["key"] == "test-key"
    usage = json.loads((tmp_path / "api_usage.json").read_text())["openai:fake-judge"]
    assert usage["requests"] == 2 and usage["failures"] == 0
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert "test-key" not in (tmp_path / "api_usage.json").read_text()
    model.chat([ASK], GenerationParams())  # a second call adds to the file, it does not overwrite it
    assert json.loads((tmp_path / "api_usage.json").read_text())["openai:fake-judge"]["requests"] == 3


@pytest.mark.parametrize("fault", ["429", "500"])
def test_retries_then_success(server, context, fault):
    server.faults.extend([fault, fault])
    model = openai_model(server, context, max_retries=2)
    assert model.chat([ASK], GenerationParams()) == [["Score: 3"]]
    assert server.count("/chat/completions") == 3
    assert model.usage.counts["retries"] == 2 and model.usage.counts["failures"] == 0


def test_slow_replies_time_out_and_count_against_the_budget(server):
    server.slow_seconds = 1.0
    server.faults.extend(["slow", "slow"])
    model = openai_model(server, timeout=0.25, max_retries=1, failure_budget=1)
    assert model.chat([ASK], GenerationParams(n=2)) == [["", ""]]  # failed after retries: empty, counted
    assert server.count() == 2 and model.usage.counts["failures"] == 1
    server.faults.extend(["slow", "slow"])
    with pytest.raises(ModelError, match=r"2 requests in a row failed after 1 retries each \(failure_budget = 1\)"):
        model.chat([ASK], GenerationParams())


def test_malformed_json_is_a_counted_failure(server):
    server.faults.append("malformed")
    model = openai_model(server, max_retries=0, failure_budget=3)
    assert model.chat([ASK], GenerationParams()) == [[""]]
    assert model.usage.counts["failures"] == 1
    assert model.chat([ASK], GenerationParams()) == [["Score: 3"]]


def test_unknown_model_is_a_one_line_api_error(server):
    with pytest.raises(ModelError, match="API error 404.*check the model name") as info:
        openai_model(server, model="no-such-model").chat([ASK], GenerationParams())
    assert "\n" not in str(info.value)
    assert server.count() == 1  # a 404 is not retried


def test_wrong_key_is_fatal_and_names_the_variable(server, monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", "wrong")
    with pytest.raises(ModelError, match="401.*FAKE_API_KEY"):
        openai_model(server).chat([ASK], GenerationParams())


def test_missing_key_variable_is_named(server, monkeypatch):
    monkeypatch.delenv("FAKE_API_KEY")
    with pytest.raises(ConfigError, match="environment variable FAKE_API_KEY is not set"):
        anthropic_model(server).chat([ASK], GenerationParams())
    assert server.count() == 0


def test_unreachable_base_url(monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", "k")
    model = OpenAIChatModel(
        OpenAIChatModel.Options(model="m", base_url="http://127.0.0.1:9/v1", api_key_env="FAKE_API_KEY", max_retries=0)
    )
    with pytest.raises(ModelError, match=r"cannot reach http://127\.0\.0\.1:9/v1"):
        model.chat([ASK], GenerationParams())


def test_next_token_probs_from_top_logprobs(server):
    server.top_logprobs = {"4": 0.5, " 4": 0.1, "2": 0.2, "x": 0.2}
    probs = openai_model(server).next_token_probs([ASK], ["2", "3", "4"], "Score: ")
    assert probs[0] == pytest.approx({"2": 0.2, "3": 0.0, "4": 0.6})
    body = server.requests[0]["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    assert "exactly one of 2, 3, 4" in body["messages"][-1]["content"]


def test_prefill_asks_the_server_to_continue_the_assistant_prefix(server):
    server.top_logprobs = {"3": 0.9}
    assert openai_model(server, prefill=True).next_token_probs([ASK], ["3"], "Score: ") == [{"3": 0.9}]
    body = server.requests[-1]["body"]
    assert body["messages"] == [*ASK, {"role": "assistant", "content": "Score: "}]
    # vLLM renders the prefix open only when asked (else it closes the turn and opens another)
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    openai_model(server, prefill=True).next_token_probs([ASK], ["3"])  # no prefix: nothing to continue
    assert "continue_final_message" not in server.requests[-1]["body"]


def test_concurrency_is_bounded_and_used(server):
    # The server holds each request until 8 are in flight: only a client sending 8 at once
    # gets answers (a sequential one breaks the gate and gets errors). No clock is read.
    server.gate = threading.Barrier(8, timeout=30)
    replies = openai_model(server, concurrency=8, max_retries=0).chat([ASK] * 8, GenerationParams())
    assert replies == [["Score: 3"]] * 8 and server.max_in_flight == 8
    # With a bound of 2, requests go in pairs: the gate opens for each pair, never more at once.
    server.gate, server.max_in_flight = threading.Barrier(2, timeout=30), 0
    replies = openai_model(server, concurrency=2, max_retries=0).chat([ASK] * 6, GenerationParams())
    assert replies == [["Score: 3"]] * 6 and server.max_in_flight == 2


def test_anthropic_messages_system_samples_and_retries(server, context, tmp_path):
    server.reply = lambda messages, model: f"{messages[0]['role']}:{messages[0]['content']}"
    server.faults.append("429")
    model = anthropic_model(server, context, max_retries=1)
    assert model.chat([ASK], GenerationParams(n=3)) == [["system:Be brief."] * 3]
    bodies = [r["body"] for r in server.requests]
    assert all(b["system"] == "Be brief." and b["messages"] == ASK[1:] for b in bodies)
    assert len(bodies) == 4 and model.usage.counts["retries"] == 1
    usage = json.loads((tmp_path / "api_usage.json").read_text())["anthropic:fake-claude"]
    assert usage["requests"] == 3
    with pytest.raises(UnsupportedError):
        model.next_token_probs([ASK], ["1", "2"])

"""External rewarders drive real GRPO training: the `judge` and `negotiation` rewarders, served
by the local fake API server, train the tiny policy end to end through `dynalign run`."""

from __future__ import annotations

import json
import re

from conftest import write_config

RUN = """
value = "ca"
[policy]
backend = "hf"
options = {{ model = "{model}" }}
[prompts]
generator = "file"
options = {{ n = 8, held_out = 2 }}
[[rewarders]]
name = "judge"
options = {{ mode = "pointwise", logprobs = "never", model = {{ backend = "openai", options = {{ model = "fake-judge", base_url = "{openai}", api_key_env = "FAKE_API_KEY" }} }} }}
[[rewarders]]
name = "negotiation"
weight = 0.5
options = {{ rounds = 2, model = {{ backend = "anthropic", options = {{ model = "fake-claude", base_url = "{anthropic}", api_key_env = "FAKE_API_KEY" }} }} }}
[optimizer]
name = "grpo"
options = {{ num_generations = 2, max_steps = 2, max_completion_length = 6, save_steps = 2, log_kl = false }}
"""


def test_judge_and_negotiation_rewarders_train_the_policy(server, tmp_path, tiny_model_dir, run_cli):
    def reply(messages, model):
        # a judge that likes longer answers, so the group has reward variance
        fenced = re.findall(r"<answer-[0-9a-f]+>\n(.*?)\n</answer-", messages[-1]["content"], re.S)
        return f"Score: {min(5, 1 + len(fenced[0].split()) if fenced else 3)}"

    server.reply = reply
    config = write_config(
        tmp_path / "ext.toml",
        RUN.format(model=tiny_model_dir, openai=server.openai_url, anthropic=server.url),
    )
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(1.0 <= r["judge/mean"] <= 5.0 and 1.0 <= r["negotiation/mean"] <= 5.0 for r in rows)
    assert len(server.requests) >= 2 * 2 * 2  # both rewarders asked the server for every candidate
    assert (tmp_path / "run" / "api_usage.json").exists()
    assert (tmp_path / "run" / "rounds" / "0" / "model" / "config.json").exists()

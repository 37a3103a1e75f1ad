"""A key inside a URL never leaves the process: config.json, error lines, backend descriptions."""

from __future__ import annotations

import json

from dynalign.api import redact
from dynalign.redaction import redact_urls
from dynalign_api.openai_backend import OpenAIChatModel

URL = "http://user:SECRETKEY@127.0.0.1:9/v1"


def test_url_credentials_are_redacted_in_any_string():
    assert redact_urls(URL) == "http://***@127.0.0.1:9/v1"
    assert redact_urls("see https://h/x?api_key=SECRETKEY&model=m") == "see https://h/x?api_key=***&model=m"
    assert redact_urls("http://host:8000/v1 and no secret") == "http://host:8000/v1 and no secret"
    data = {"rewarders": [{"options": {"model": {"options": {"base_url": URL}}}}], "note": f"at {URL}"}
    assert "SECRETKEY" not in json.dumps(redact(data))


def test_backend_description_is_redacted():
    model = OpenAIChatModel(OpenAIChatModel.Options(model="m", base_url=URL, api_key_env="FAKE_API_KEY"))
    assert model.describe()["base_url"] == "http://***@127.0.0.1:9/v1"


def test_cannot_reach_error_line_is_redacted(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", "k")
    config = tmp_path / "c.toml"
    config.write_text(
        'value = "ca"\n[[rewarders]]\nname = "judge"\noptions = { mode = "pointwise", logprobs = "never", model = '
        f'{{ backend = "openai", options = {{ model = "m", base_url = "{URL}", api_key_env = "FAKE_API_KEY", '
        "max_retries = 0 } } }\n"
    )
    (tmp_path / "in.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "out.jsonl")
    assert result.exit_code != 0 and "cannot reach http://***@127.0.0.1:9/v1" in result.stderr, result.stderr
    assert "SECRETKEY" not in result.stderr + result.stdout

"""A failed `dynalign prompts generate` leaves nothing behind and never blocks the corrected rerun."""

from __future__ import annotations

import pytest
from conftest import write_config


def only_one_line(result) -> str:
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("", "0 distinct prompts"),
        ('{"prompt": "Plant a tree."}\n{"prompt": \n', "not valid JSON"),
        ('{"prompt": "Plant a tree."}\n', "held_out"),
    ],
)
def test_a_bad_prompt_file_leaves_no_prompts_folder(tmp_path, run_cli, monkeypatch, content, needle):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "p.jsonl"
    if content is not None:
        prompts.write_text(content)
    config = write_config(
        tmp_path / "c.toml",
        f'value = "ca"\n[prompts]\ngenerator = "file"\noptions = {{ path = "{prompts}", held_out = 2 }}\n',
    )
    assert needle in only_one_line(run_cli("prompts", "generate", config))
    assert not (tmp_path / "prompts").exists()
    prompts.write_text("".join(f'{{"prompt": "Plant tree number {i} together."}}\n' for i in range(6)))
    fixed = run_cli("prompts", "generate", config)
    assert fixed.exit_code == 0, fixed.stderr
    assert (tmp_path / "prompts" / "c" / "train.jsonl").exists()


AGENTS = """
value = "ca"
[prompts]
generator = "agents"
[prompts.options]
n = 4
held_out = 1
progress = false
[prompts.options.model]
backend = "openai"
options = { model = "m", base_url = "http://127.0.0.1:9/v1", api_key_env = "DYNALIGN_TEST_AGENTS_KEY", max_retries = 0 }
"""


def test_an_unusable_agents_endpoint_leaves_nothing_and_the_rerun_starts_clean(tmp_path, run_cli, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DYNALIGN_TEST_AGENTS_KEY", raising=False)
    config = write_config(tmp_path / "agents.toml", AGENTS)
    keyless = only_one_line(run_cli("prompts", "generate", config))
    assert "DYNALIGN_TEST_AGENTS_KEY is not set" in keyless
    assert not (tmp_path / "prompts").exists()
    monkeypatch.setenv("DYNALIGN_TEST_AGENTS_KEY", "test-key")  # the fix; the endpoint is still down
    unreachable = only_one_line(run_cli("prompts", "generate", config))
    assert "cannot reach" in unreachable and "--resume" not in unreachable
    assert not (tmp_path / "prompts").exists()
    out = tmp_path / "given"
    out.mkdir()  # a folder the user made stays, empty
    only_one_line(run_cli("prompts", "generate", config, "--out", out))
    assert out.is_dir() and not any(out.iterdir())

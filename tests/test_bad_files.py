"""Ordinary file problems give one `error:` line naming the file, and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_config

LATIN1 = 'value = "ca"\n# caf\xe9\n'.encode("latin-1")


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0, result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def run_config(tmp_path: Path, model: Path, prompts: str = "") -> Path:
    line = f"options = {{ path = {json.dumps(prompts)}, held_out = 1 }}" if prompts else "options = { held_out = 1 }"
    return write_config(
        tmp_path / "run.toml",
        f"""
        value = "ca"
        [policy]
        options = {{ model = {json.dumps(str(model))} }}
        [prompts]
        generator = "file"
        {line}
        [optimizer]
        name = "grpo"
        options = {{ max_steps = 1 }}
        """,
    )


def test_config_not_utf8(tmp_path, run_cli):
    path = tmp_path / "c.toml"
    path.write_bytes(LATIN1)
    one_line_error(run_cli("config", "check", path), str(path), "not UTF-8")


def test_config_is_a_folder(tmp_path, run_cli):
    one_line_error(run_cli("config", "check", tmp_path), str(tmp_path), "folder")


def test_config_with_a_byte_order_mark_is_accepted(tmp_path, run_cli):
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'value = "ca"\n[optimizer]\nname = "grpo"\n')
    result = run_cli("config", "check", path)
    assert result.exit_code == 0, result.stderr


def test_truncated_model_config_json(tmp_path, run_cli):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "lla')
    one_line_error(run_cli("config", "check", run_config(tmp_path, model)), "config.json", "not valid JSON")


SCORE_INPUTS = {
    "not-utf8": (b'{"prompt": "caf\xe9", "completion": "x"}\n', "not UTF-8"),
    "list-line": (b"[1, 2]\n", "must be a JSON object"),
    "string-line": (b'"hello"\n', "must be a JSON object"),
    "null-completion": (b'{"prompt": "p", "completion": null}\n', "`prompt` and `completion` must be a string"),
    "number-prompt": (b'{"prompt": 3, "completion": "x"}\n', "`prompt` and `completion` must be a string"),
}


@pytest.mark.parametrize("case", sorted(SCORE_INPUTS))
def test_score_bad_input_rows(tmp_path, run_cli, case):
    data, needle = SCORE_INPUTS[case]
    rows = tmp_path / "in.jsonl"
    rows.write_bytes(data)
    config = write_config(tmp_path / "c.toml", 'value = "ca"\n[[rewarders]]\nname = "self-reward"\n')
    one_line_error(run_cli("score", config, rows, "--out", tmp_path / "out.jsonl"), str(rows), needle)
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.run").exists()


@pytest.mark.parametrize("where", ["folder", "under-a-file"])
def test_score_out_cannot_be_written(tmp_path, run_cli, where):
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"prompt": "p", "completion": "x"}\n')
    config = write_config(tmp_path / "c.toml", 'value = "ca"\n[[rewarders]]\nname = "self-reward"\n')
    (tmp_path / "afile").write_text("x")
    out = tmp_path if where == "folder" else tmp_path / "afile" / "out.jsonl"
    one_line_error(run_cli("score", config, rows, "--out", out, "--run-dir", tmp_path / "rd"))
    assert not (tmp_path / "rd").exists()


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("p.jsonl", b'{"prompt": "caf\xe9"}\n', "not UTF-8"),
        ("p.jsonl", b'["a list"]\n', "must be a JSON object"),
        ("p.csv", b"prompt\ncaf\xe9\n", "not UTF-8"),
    ],
)
def test_run_with_a_bad_prompt_file_leaves_nothing(tmp_path, run_cli, tiny_model_dir, name, data, needle):
    prompts = tmp_path / name
    prompts.write_bytes(data)
    out = tmp_path / "out"
    one_line_error(run_cli("run", run_config(tmp_path, tiny_model_dir, str(prompts)), "--out", out), needle)
    assert not out.exists()


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_run_out_cannot_be_a_folder(tmp_path, run_cli, tiny_model_dir, where):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" if where == "a-file" else tmp_path / "afile" / "run"
    one_line_error(run_cli("run", run_config(tmp_path, tiny_model_dir), "--out", out), "afile")
    assert (tmp_path / "afile").read_text() == "x"


def test_truncated_run_config_json(tmp_path, run_cli, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text('{"fingerprint": "ab')
    (out / "metrics.jsonl").write_text("")  # a run that started
    result = run_cli("run", run_config(tmp_path, tiny_model_dir), "--out", out, "--resume")
    one_line_error(result, "config.json", "not valid JSON")


def test_eval_on_a_file_says_it_is_not_a_run_directory(tmp_path, run_cli):
    path = tmp_path / "metrics.jsonl"
    path.write_text("{}\n")
    one_line_error(run_cli("eval", path), str(path), "not a run directory")


def test_eval_on_a_truncated_run(tmp_path, run_cli):
    (tmp_path / "config.json").write_text('{"config": {"val')
    one_line_error(run_cli("eval", tmp_path), "config.json", "not valid JSON")


def test_value_file_not_utf8(tmp_path):
    from dynalign.errors import ValueSpecError
    from dynalign.values import load_value_file

    path = tmp_path / "v.toml"
    path.write_bytes(LATIN1)
    with pytest.raises(ValueSpecError, match="not UTF-8"):
        load_value_file(path)


def test_stray_os_errors_become_one_line(tmp_path, run_cli, monkeypatch):
    from dynalign import config as config_module

    def refuse(path, error=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(config_module, "read_text", refuse)
    path = write_config(tmp_path / "c.toml", 'value = "ca"\n')
    one_line_error(run_cli("config", "check", path), str(path), "Permission denied".lower())


def test_a_start_that_never_began_does_not_block_the_fixed_rerun(tmp_path):
    from dynalign.errors import RunDirectoryError
    from dynalign.rundir import RunDirectory

    root = tmp_path / "out"
    RunDirectory.prepare(root, {"seed": 1}, resume=False)  # then the start failed (or was killed)
    run = RunDirectory.prepare(root, {"seed": 2}, resume=False)  # the corrected config is taken
    assert run.read_json(RunDirectory.CONFIG)["config"] == {"seed": 2}
    run.write_json("state.json", {"rounds": {}})  # now it has started: a different config is refused
    with pytest.raises(RunDirectoryError, match="different run"):
        RunDirectory.prepare(root, {"seed": 3}, resume=False)


def test_score_never_writes_nan(tmp_path, run_cli, monkeypatch):
    from dynalign import plugins
    from dynalign.api import Rewarder
    from dynalign.testing import scripted_plugin

    class NotANumber(Rewarder):
        name = "nan-reward"

        def __call__(self, prompts, completions, **columns):
            return [float("nan"), float("inf")][: len(completions)]

    registry = plugins.load_registry(extra_plugins=[scripted_plugin(NotANumber)])
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"prompt": "p", "completion": "a"}\n{"prompt": "p", "completion": "b"}\n')
    config = write_config(tmp_path / "c.toml", 'value = "ca"\n[[rewarders]]\nname = "nan-reward"\n')
    result = run_cli("score", config, rows, "--out", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.stderr
    for line in (tmp_path / "out.jsonl").read_text().splitlines():
        row = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the output"))
        assert row["reward"] is None and row["rewards"] == {"nan-reward": None}


def test_a_huge_prompt_is_refused_before_the_run_starts(tmp_path, run_cli, tiny_model_dir):
    prompts = tmp_path / "p.jsonl"
    rows = [{"prompt": f"Question {i}?"} for i in range(4)] + [{"prompt": "x " * 50_000}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    result = run_cli("run", run_config(tmp_path, tiny_model_dir, str(prompts)), "--out", out)
    one_line_error(result, str(prompts), "prompt 5 is 99999 characters", "max_chars")
    assert not out.exists()


def test_a_conversation_longer_than_the_context_is_refused(tiny_model_dir):
    from dynalign.api import GenerationParams
    from dynalign.errors import ModelError
    from dynalign_hf.backend import HFChatModel, HFOptions

    model = HFChatModel(HFOptions(model=str(tiny_model_dir)))
    long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(ModelError, match="more than the model's context of 2048"):
        model.chat([long], GenerationParams(max_new_tokens=4))
    with pytest.raises(ModelError, match="more than the model's context"):
        model.next_token_probs([long], ["1", "2"], "Score: ")


def test_prompts_generate_with_a_bad_prompt_file_leaves_nothing(tmp_path, run_cli):
    prompts = tmp_path / "p.jsonl"
    prompts.write_bytes(b'{"prompt": "caf\xe9"}\n')
    config = write_config(
        tmp_path / "c.toml", f'value = "ca"\n[prompts]\ngenerator = "file"\noptions = {{ path = "{prompts}" }}\n'
    )
    one_line_error(run_cli("prompts", "generate", config, "--out", tmp_path / "out"), str(prompts), "not UTF-8")
    assert not (tmp_path / "out").exists()

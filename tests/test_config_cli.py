"""Config validation (two phases, env overrides, secrets) and the CLI's one-line errors."""

from __future__ import annotations

import pytest
from conftest import write_config

from dynalign.api import redact
from dynalign.config import load_config
from dynalign.errors import ConfigError


def test_default_config_is_the_ca_stack():
    config = load_config()
    assert config.value == "collective-agency"
    assert config.policy.options["model"] == "embedded:smollm2-135m-instruct"
    assert [r.name for r in config.rewarders] == ["self-reward"] and config.optimizer.name == "grpo"


def test_env_overrides_nested_keys(tmp_path, monkeypatch):
    path = write_config(tmp_path / "c.toml", '[optimizer]\nname = "grpo"\noptions = { max_steps = 3 }\n')
    monkeypatch.setenv("DYNALIGN_SEED", "7")
    monkeypatch.setenv("DYNALIGN_OPTIMIZER__OPTIONS__NUM_GENERATIONS", "4")
    config = load_config(path)
    assert config.seed == 7
    assert config.optimizer.options == {"max_steps": 3, "num_generations": 4}


def test_secrets_are_redacted():
    data = {"policy": {"options": {"api_key": "sk-123", "api_key_env": "OPENAI_API_KEY", "model": "x"}}}
    assert redact(data)["policy"]["options"] == {"api_key": "***", "api_key_env": "OPENAI_API_KEY", "model": "x"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('value = "ca"\nseeed = 1\n', "seeed: unknown option"),
        ('value = "ca"\nrounds = "many"\n', "rounds: Input should be a valid integer"),
        ("[[rewarders]]\nweight = 2.0\n", "rewarders[0].name: required field is missing"),
        ('value = "ca"\n[policy\n', "TOML syntax error"),
    ],
)
def test_shape_errors_are_one_line_with_location(tmp_path, run_cli, text, expected):
    path = write_config(tmp_path / "bad.toml", text)
    result = run_cli("config", "check", path)
    assert result.exit_code == 2
    assert expected in result.stderr and str(path) in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_toml_error_gives_line_and_column(tmp_path):
    path = write_config(tmp_path / "bad.toml", 'value = "ca"\n[policy\n')
    with pytest.raises(ConfigError, match=r"line 2, column"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('value = "kindness"\n', "unknown value 'kindness'. Choose one of: "),
        (
            '[[rewarders]]\nname = "self-reward"\noptions = { mood = "probability" }\n',
            "rewarders[0].options.mood: unknown option",
        ),
        ('[[rewarders]]\nname = "self-reward"\noptions = { mode = 3 }\n', "rewarders[0].options.mode"),
        ('[optimizer]\nname = "grpo"\noptions = { num_generations = 1 }\n', "optimizer.options.num_generations"),
        ('[optimizer]\nname = "grpo"\noptions = { learning_rate = -1e-5 }\n', "optimizer.options.learning_rate"),
        (
            '[optimizer]\nname = "grpo"\noptions = { trl = { learning_rat = 1e-5 } }\n',
            "optimizer.options.trl.learning_rat: unknown TRL",
        ),
        (
            '[optimizer]\nname = "grpo"\noptions = { num_generations = 4, trl = { generation_batch_size = 6 } }\n',
            "divisible",
        ),
        (
            '[optimizer]\nname = "grpo"\noptions = { trl = { max_steps = 3 } }\n',
            "set it as optimizer.options.max_steps",
        ),
        (
            '[optimizer]\nname = "grpo"\noptions = { context_correction = true, exclude_system_prompt = false }\n',
            "context_correction needs exclude_system_prompt = true",
        ),
        (
            '[optimizer]\nname = "grpo"\noptions = { context_distillation = 1.0, exclude_system_prompt = false }\n',
            "context_distillation needs exclude_system_prompt = true",
        ),
        ('[policy]\nbackend = "hf"\noptions = { modle = "x" }\n', "policy.options.modle: unknown option"),
        ('[prompts]\ngenerator = "nope"\n', "unknown prompt generator 'nope'"),
    ],
)
def test_component_errors_are_one_line(tmp_path, run_cli, text, expected):
    path = write_config(tmp_path / "bad.toml", text)
    result = run_cli("config", "check", path)
    assert result.exit_code != 0
    assert expected in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_config_check_accepts_the_example_configs(run_cli, monkeypatch):
    import importlib.util
    from pathlib import Path

    monkeypatch.setenv("OPENAI_API_KEY", "set")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "set")
    monkeypatch.setenv("VLLM_API_KEY", "set")  # judge-vllm.toml: a local vLLM server's key
    root = Path(__file__).resolve().parents[1] / "examples" / "configs"
    for path in sorted(root.glob("*.toml")):
        if path.name == "rules.toml":
            continue  # needs the example packages: tests/test_examples.py checks it with them installed
        result = run_cli("config", "check", path)
        if "use_vllm = true" in path.read_text() and importlib.util.find_spec("vllm") is None:
            assert result.exit_code == 1 and "is not installed: pip install 'dynalign[vllm" in result.stderr
            continue  # tests/test_grpo_vllm.py runs them where vLLM is installed
        assert result.exit_code == 0, f"{path.name}: {result.stderr}"
        assert result.stdout.startswith("ok: ")


def test_traceback_flag_shows_the_chain(tmp_path, run_cli):
    path = write_config(tmp_path / "bad.toml", 'value = "kindness"\n')
    with pytest.raises(Exception, match="unknown value"):
        run_cli("--traceback", "config", "check", path)


def test_config_schema_and_components_and_values(run_cli):
    schema = run_cli("config", "schema").json()
    assert {"value", "policy", "rewarders", "optimizer", "stages"} <= set(schema["properties"])
    rows = run_cli("components", "--kind", "rewarder", "--json").json()
    self_reward = next(r for r in rows if r["name"] == "self-reward")
    assert "mode" in self_reward["options"]["properties"]
    shown = run_cli("values", "show", "ca", "--json").json()
    assert [p["name"] for p in shown["pillars"]] == ["Knowledge", "Power", "Vitality", "Benevolence"]
    assert run_cli("components", "--kind", "colour").exit_code != 0


def test_missing_model_path_is_a_clear_error(tmp_path, run_cli):
    path = write_config(tmp_path / "c.toml", '[policy]\nbackend = "hf"\noptions = { model = "./no/such/model" }\n')
    result = run_cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code != 0 and "model path ./no/such/model does not exist" in result.stderr
    assert not (tmp_path / "run").exists()


RULES = """
value = "ca"
[[rewarders]]
name = "self-reward"
[[rewarders]]
name = "self-reward"
weight = 0.5
options = { mode = "verdict" }
"""


def test_env_overrides_reach_list_entries(tmp_path, monkeypatch):
    path = write_config(tmp_path / "c.toml", RULES)
    monkeypatch.setenv("DYNALIGN_REWARDERS__1__WEIGHT", "2")
    monkeypatch.setenv("DYNALIGN_REWARDERS__1__OPTIONS__MODE", "probability")
    monkeypatch.setenv("DYNALIGN_REWARDERS__0__OPTIONS__PILLAR_DIAGNOSTICS", "true")
    config = load_config(path)
    assert [r.weight for r in config.rewarders] == [1.0, 2.0]
    assert config.rewarders[1].options == {"mode": "probability"}
    assert config.rewarders[0].options == {"pillar_diagnostics": True}


def test_env_override_of_a_key_the_file_leaves_out_starts_from_the_default(monkeypatch):
    monkeypatch.setenv("DYNALIGN_REWARDERS__0__WEIGHT", "3")
    config = load_config()
    assert [(r.name, r.weight) for r in config.rewarders] == [("self-reward", 3.0)]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DYNALIGN_SEED", "many", "environment variable DYNALIGN_SEED: seed: Input should be a valid integer"),
        ("DYNALIGN_OPTIMIZER__BOGUS", "1", "environment variable DYNALIGN_OPTIMIZER__BOGUS: optimizer.bogus: unknown"),
        (
            "DYNALIGN_REWARDERS__1__OPTIONS__MODE",
            "loud",
            "environment variable DYNALIGN_REWARDERS__1__OPTIONS__MODE: rewarders[1].options.mode",
        ),
        (
            "DYNALIGN_REWARDERS__5__WEIGHT",
            "2",
            "environment variable DYNALIGN_REWARDERS__5__WEIGHT: rewarders is a list of 2; '5' is not an index",
        ),
        ("DYNALIGN_SEED__X", "1", "environment variable DYNALIGN_SEED__X: seed is a single value"),
    ],
)
def test_a_bad_env_override_names_the_variable_not_the_file(tmp_path, monkeypatch, run_cli, variable, value, expected):
    path = write_config(tmp_path / "c.toml", RULES)
    monkeypatch.setenv(variable, value)
    result = run_cli("config", "check", path)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {expected}"), result.stderr
    assert str(path) not in result.stderr and result.stderr.count("\n") == 1


def test_config_check_fails_on_an_unset_api_key_variable(run_cli, monkeypatch):
    from pathlib import Path

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = Path(__file__).resolve().parents[1] / "examples" / "configs" / "judge-openai.toml"
    result = run_cli("config", "check", path)
    assert result.exit_code == 2 and "OPENAI_API_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'seed = 1\n[optimizer]\nname = "grpo"\noptions = { trl = { learning_rate = nan } }\n',
            "optimizer.options.trl.learning_rate: nan and inf",
        ),
        ('[[rewarders]]\nname = "self-reward"\nweight = inf\n', "rewarders[0].weight: nan and inf"),
        ('[[rewarders]]\nname = "self-reward"\nweight = 0.0\n', "weights sum to 0"),
        (
            '[[rewarders]]\nname = "self-reward"\nweight = 1.0\n[[rewarders]]\nname = "self-reward"\nweight = -1.0\n'
            "allow_negative_weight = true\n",
            "weights sum to 0",
        ),
    ],
)
def test_configs_that_cannot_train_are_refused(tmp_path, run_cli, text, expected):
    path = write_config(tmp_path / "bad.toml", text)
    result = run_cli("config", "check", path)
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_a_non_finite_option_from_the_environment_is_refused(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("DYNALIGN_REWARDERS", '[{"name": "self-reward", "weight": "nan"}]')
    result = run_cli("config", "check", write_config(tmp_path / "c.toml", 'value = "ca"\n'))
    assert result.exit_code == 2 and "finite" in result.stderr, result.stderr


def test_a_negative_weight_must_be_meant(tmp_path, run_cli):
    text = '[[rewarders]]\nname = "self-reward"\nweight = 2.0\n[[rewarders]]\nname = "judge"\nweight = -1.0\n'
    result = run_cli("config", "check", write_config(tmp_path / "typo.toml", text))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "rewarders[1]: " in result.stderr and "weight -1 is negative" in result.stderr
    assert "allow_negative_weight = true" in result.stderr
    meant = load_config(write_config(tmp_path / "meant.toml", text + "allow_negative_weight = true\n"))
    assert [r.weight for r in meant.rewarders] == [2.0, -1.0]


def test_a_config_path_that_is_a_symlink_loop_says_so(tmp_path, run_cli):
    (tmp_path / "loop.toml").symlink_to(tmp_path / "loop.toml")
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "gone.toml")
    result = run_cli("config", "check", tmp_path / "loop.toml")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "symbolic link that leads back to itself" in result.stderr and "does not exist" not in result.stderr
    result = run_cli("config", "check", tmp_path / "dangling.toml")
    assert f"is a symbolic link to {tmp_path / 'gone.toml'}, which does not exist" in result.stderr

"""`dynalign score` with a third-party rewarder written to the documented contract, its
errors, its help text and its summary keys; `components` summaries; `config check` output."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_policy_config, write_config

CONTRACT_REWARDER = """
from dynalign import hookimpl
from dynalign.api import Options, Rewarder

class LengthOptions(Options):
    fail_on: str = ""

class LengthRewarder(Rewarder):
    \"\"\"Scores by answer length, reading the documented conversational format.\"\"\"

    name = "length"
    Options = LengthOptions

    def __call__(self, prompts, completions, **columns):
        assert prompts[0][-1]["role"] == "user"
        scores = []
        for c in completions:
            if self.options.fail_on and self.options.fail_on in c[-1]["content"]:
                raise KeyError("no such word")
            scores.append(float(len(c[-1]["content"].split())))
        self.seen = len(completions)
        return scores

    def pop_metrics(self):
        return {"rows_seen": float(self.seen)}

@hookimpl
def register_rewarders(register):
    register(LengthRewarder)
"""

ROWS = [
    {"prompt": "Say hi", "completion": "hi there"},
    {"prompt": [{"role": "user", "content": "Say more"}], "completion": [{"role": "assistant", "content": "a b c"}]},
    {"prompt": "Say bye", "completion": "bye"},
]


@pytest.fixture
def scoring(fake_dist, tmp_path):
    fake_dist("dynalign-length", "length_rewarder", CONTRACT_REWARDER)

    def setup(options: str = "", rows=ROWS):
        config = write_config(tmp_path / "c.toml", f'value = "ca"\n[[rewarders]]\nname = "length"\n{options}\n')
        (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return config, tmp_path / "in.jsonl", tmp_path / "out.jsonl"

    return setup


def test_plain_string_rows_reach_the_rewarder_as_conversations(scoring, run_cli):
    config, rows, out = scoring()
    result = run_cli("score", config, rows, "--out", out)
    assert result.exit_code == 0, result.stderr
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reward"] for r in scored] == [2.0, 3.0, 1.0]
    assert scored[0]["prompt"] == "Say hi" and scored[0]["completion"] == "hi there"  # rows written as given
    # the same keys as a training run's metrics: <rewarder>/mean, <rewarder>/<diagnostic>, reward_mean
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "length/mean": 2.0,
        "length/rows_seen": 3.0,
        "reward_mean": 2.0,
    }


def test_a_rewarder_exception_is_one_line_naming_rewarder_and_row(scoring, run_cli):
    config, rows, out = scoring('options = { fail_on = "bye" }')
    result = run_cli("score", config, rows, "--out", out)
    assert result.exit_code == 1 and not out.exists()
    assert result.stderr == "error: rewarder 'length' failed on row 3: KeyError: 'no such word'\n"
    with pytest.raises(Exception, match="failed on row 3") as raised:
        run_cli("--traceback", "score", config, rows, "--out", out)
    assert isinstance(raised.value.__cause__, KeyError)


def test_a_malformed_message_list_is_one_line_naming_the_line(scoring, run_cli):
    config, rows, out = scoring(rows=[ROWS[0], {"prompt": "x", "completion": [{"text": "no role"}]}])
    result = run_cli("score", config, rows, "--out", out)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert f"{rows}:2: `prompt` and `completion` must be a string or a non-empty list" in result.stderr


def test_score_help_keeps_the_brackets(run_cli):
    assert "Config whose [[rewarders]] score the rows." in run_cli("score", "--help").stdout


def test_component_summaries_are_whole_paragraphs(run_cli):
    rows = {r["name"]: r["summary"] for r in run_cli("components", "--json").json()}
    assert rows["eval"].endswith("writes eval/results.json.")
    assert all("\n" not in summary for summary in rows.values())


def test_config_check_names_rewarder_weights_readably(tmp_path, run_cli):
    config = write_config(tmp_path / "c.toml", '[[rewarders]]\nname = "self-reward"\nweight = 0.5\n')
    result = run_cli("config", "check", config)
    assert result.exit_code == 0, result.stderr
    assert "rewarders=[self-reward (weight 0.5)]" in result.stdout


def test_score_with_self_reward_judges_with_the_configs_policy(tiny_model_dir, tmp_path, run_cli):
    config = tiny_policy_config(
        tmp_path / "self.toml",
        tiny_model_dir,
        '[[rewarders]]\nname = "self-reward"\noptions = { mode = "contrast" }\n'
        '[[rewarders]]\nname = "self-reward"\noptions = { mode = "probability" }\n',
    )
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    result = run_cli("score", str(config), str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(isinstance(r["rewards"]["self-reward#0"], float) for r in rows)
    assert all(0.0 <= r["rewards"]["self-reward#1"] <= 5.0 for r in rows)


def test_score_with_self_reward_needs_a_local_policy(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    config = write_config(
        tmp_path / "api.toml",
        'value = "ca"\n[policy]\nbackend = "openai"\noptions = { model = "m", base_url = "http://127.0.0.1:9/v1" }\n'
        '[[rewarders]]\nname = "self-reward"\n',
    )
    (tmp_path / "in.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    result = run_cli("score", str(config), str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"))
    assert result.exit_code != 0 and "is not a local model" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


BROKEN_REWARDER = """
from dynalign import hookimpl
from dynalign.api import Options, Rewarder

class BrokenOptions(Options):
    returns: str = "text"

class BrokenRewarder(Rewarder):
    \"\"\"Breaks the reward contract in the way its options say.\"\"\"

    name = "broken"
    Options = BrokenOptions

    def __call__(self, prompts, completions, **columns):
        if self.options.returns == "text":
            return "5"
        if self.options.returns == "short":
            return [1.0] * (len(completions) - 1)
        return [1.0 for _ in completions]

    def pop_metrics(self):
        return {"broken/rate": 1.0} if self.options.returns == "prefixed" else {}

@hookimpl
def register_rewarders(register):
    register(BrokenRewarder)
"""


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        (
            "text",
            "error: rewarder 'broken' must return a list of 3 scores (a float, or None when unscorable); "
            "it returned '5' (str)\n",
        ),
        (
            "short",
            "error: rewarder 'broken' must return a list of 3 scores (a float, or None when unscorable), "
            "one per completion; it returned 2\n",
        ),
        (
            "prefixed",
            "error: rewarder 'broken': pop_metrics() key 'broken/rate' carries the rewarder's name; "
            "return 'rate' (the logger adds broken/)\n",
        ),
    ],
)
def test_a_rewarder_breaking_the_contract_is_one_line(fake_dist, tmp_path, run_cli, returns, expected):
    fake_dist("dynalign-broken-rewarder", "broken_rewarder", BROKEN_REWARDER)
    config = write_config(
        tmp_path / "c.toml", f'value = "ca"\n[[rewarders]]\nname = "broken"\noptions = {{ returns = "{returns}" }}\n'
    )
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    result = run_cli("score", config, tmp_path / "in.jsonl", "--out", tmp_path / "out.jsonl")
    assert (result.exit_code, result.stderr) == (1, expected)
    assert not (tmp_path / "out.jsonl").exists()

"""The public API (`dynalign.api`), judging in one home, and one way to open a run.

What plugins import is listed and documented once, holds none of the core's machinery, and
the concepts issue 18 found written twice (failure budgets, call caches, the two-order
preference, judge verdicts) are each defined once; every command opens its run through
`open_stack`, and only `dynalign.opening` builds a RunContext or binds the policy."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

import dynalign.api as api
from dynalign.api import (
    CallCache,
    ConfigError,
    FailureBudget,
    JudgeError,
    Rewarder,
    RunDirectoryError,
    Verdict,
    combine_orders,
    open_stack,
)
from dynalign.testing import scripted_plugin

ROOT = Path(__file__).resolve().parents[1]
MACHINERY = ("dynalign.config", "dynalign.plugins", "dynalign.registry", "dynalign.loop", "dynalign.cli")


def _modules() -> dict[str, ast.Module]:
    """Every module of the core and the built-in plugins, parsed."""
    files = [*(ROOT / "core").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8")) for p in files}


def test_the_api_lists_exactly_what_it_imports_each_documented():
    imported = {name for name, obj in vars(api).items() if not name.startswith("_") and not inspect.ismodule(obj)}
    assert set(api.__all__) == imported and len(api.__all__) == len(set(api.__all__))
    undocumented = [n for n in api.__all__ if callable(getattr(api, n)) and not inspect.getdoc(getattr(api, n))]
    assert undocumented == []


def test_the_api_hands_on_no_config_machinery():
    from_machinery = [n for n in api.__all__ if getattr(getattr(api, n), "__module__", "") in MACHINERY]
    assert from_machinery == []
    for name in ("load_config", "RunConfig", "get_registry", "Registry", "validation_message", "resolve"):
        assert not hasattr(api, name)


CONCEPTS = {
    "FailureBudget",
    "CallCache",
    "JudgmentCache",
    "combine_orders",
    "both_orders",
    "order_score",
    "Verdict",
    "group_indices",
    "digest",
    "call_key",
    "end_line",
    "pairwise",
    "pointwise",
    "resolve_mode",
    "JudgeError",
    "check_model_ref",
    "open_run",
    "parse_score",
    "parse_preference",
    "expected_score",
}


def test_each_judging_concept_has_one_home():
    homes: dict[str, list[str]] = {}
    for path, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in CONCEPTS:
                homes.setdefault(node.name, []).append(path)
    assert {name: paths for name, paths in homes.items() if len(paths) > 1} == {}
    judging = {path for paths in homes.values() for path in paths if "dynalign/judging/" not in path}
    assert judging <= {"core/dynalign/measured.py", "core/dynalign/files.py", "core/dynalign/errors.py"}


def _calls(tree: ast.AST, name: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) == name:
                return True
    return False


def test_only_open_stack_builds_a_run_context_or_binds_the_policy():
    builders = {path for path, tree in _modules().items() if _calls(tree, "RunContext")}
    binders = {path for path, tree in _modules().items() if _calls(tree, "bind_policy")}
    assert builders == {"core/dynalign/opening.py"}
    # `bind_policy(...)` the function (opening, and its callers) or `.bind_policy(handle)` the method
    methods = set()
    for path, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "bind_policy":
                methods.add(path)
    assert methods == {"core/dynalign/opening.py"}
    assert "core/dynalign/opening.py" in binders


def test_every_command_opens_its_run_through_open_stack():
    from dynalign import cli, loop, scoring
    from dynalign_agents import cli as prompts_cli
    from dynalign_eval import commands

    opening = [
        loop.run,
        cli.config_check,
        scoring.score,
        prompts_cli.generate,
        commands.eval_command,
        commands.report_command,
        commands.judge_check_command,
    ]
    assert [f.__name__ for f in opening if not _calls(ast.parse(inspect.getsource(f).lstrip()), "open_stack")] == []


def test_score_is_a_core_command_of_its_own():
    from dynalign.plugins import load_registry

    registered = {name for _, name in load_registry().commands}
    assert "score" not in registered  # no plugin owns it: the core's CLI does
    from dynalign import cli

    assert "score" in {c.name for c in cli.app.registered_commands}


def test_open_stack_from_a_run_directory_and_its_errors(tmp_path, tiny_model_dir):
    from dynalign_eval.testing import make_run_dir

    run = make_run_dir(tmp_path / "run", tiny_model_dir, tiny_model_dir, stages=[{"name": "report", "options": {}}])
    stack = open_stack(run_dir=run.root)
    assert stack.context.run_dir == run.root and stack.context.source == "run config"
    assert stack.policy.options.model == str(tiny_model_dir) and stack.stage_options("report") == {}
    with pytest.raises(RunDirectoryError, match="does not exist"):
        open_stack(run_dir=tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file, not a run directory"):
        open_stack(run_dir=tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirectoryError, match="no config.json"):
        open_stack(run_dir=tmp_path / "empty")


class NeedsPolicy(Rewarder):
    """Scores with the policy it was given."""

    name = "needs-policy"
    needs_policy = True
    handle = None

    def __call__(self, prompts, completions, **columns):
        return [0.0] * len(completions)

    def bind_policy(self, policy):
        self.handle = policy


def _config(tmp_path: Path, policy: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'value = "ca"\n[policy]\nbackend = "{policy}"\noptions = {{}}\n[[rewarders]]\nname = "needs-policy"\n'
    )
    return path


def test_open_stack_binds_the_initial_policy_where_a_rewarder_needs_it(tmp_path, tiny_model_dir):
    from dynalign.plugins import load_registry

    registry = load_registry(extra_plugins=[scripted_plugin(NeedsPolicy)])
    path = _config(tmp_path, "hf")
    path.write_text(path.read_text().replace("options = {}", f'options = {{ model = "{tiny_model_dir}" }}', 1))
    said: list[str] = []
    stack = open_stack(path, registry=registry, options={"prompts": {"n": 3}}, say=said.append, bind=True)
    rewarder = stack.rewarders[0].rewarder
    assert rewarder.handle is not None and stack.config.prompts.options["n"] == 3
    assert stack.context.say == said.append and open_stack(path, registry=registry).rewarders[0].rewarder.handle is None
    scripted = _config(tmp_path, "scripted")
    with pytest.raises(ConfigError, match="'needs-policy' scores with the policy, but policy.backend 'scripted'"):
        open_stack(
            scripted, registry=load_registry(extra_plugins=[scripted_plugin(NeedsPolicy, _scripted())]), bind=True
        )


def _scripted():
    from dynalign.testing import ScriptedChatModel

    return ScriptedChatModel


def test_one_failure_budget_for_judges_and_agents():
    from dynalign_agents.cache import EmptyOutputError, empty_output_budget

    judge = FailureBudget(2, "judge m")
    judge.record(False, "no verdict")
    judge.record(True)
    judge.record(False, "still\nnone")
    with pytest.raises(
        JudgeError, match=r"judge m gave no valid verdict 2 times in a row \(3 in all; failure_budget = 2\)"
    ):
        judge.record(False, "still\nnone")
    agents = empty_output_budget(1)
    with pytest.raises(EmptyOutputError, match=r"the goal agent \(hf:x\) returned empty or non-text output 1 times"):
        agents.record(False, "", "the goal agent (hf:x)")


def test_one_call_cache_skips_torn_lines_and_never_stores_none(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = CallCache(path, field="verdict")
    cache.put_many([("a", 4.0), ("b", None)])
    with path.open("a") as handle:
        handle.write('{"key": "c", "verd')  # a kill mid-write
    again = CallCache(path, field="verdict")
    assert (again.get("a"), again.get("b"), again.get("c"), again.hits, again.misses) == (4.0, None, None, 1, 2)
    again.put("d", {"x": 1})
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()[-1:]] == ["d"]
    off = CallCache(path, enabled=False)
    off.put("e", 1.0)
    assert off.get("a") is None and '"e"' not in path.read_text()


def test_both_orders_one_rule_for_the_judge_rewarder_and_the_eval():
    a, b, tie, none = Verdict("A"), Verdict("B"), Verdict("tie"), Verdict(None)
    assert combine_orders(a.value, b.value) == (1.0, False)  # i wins shown first and second
    assert combine_orders(a.value, a.value) == (0.5, True)  # each order prefers position A: bias
    assert combine_orders(tie.value, b.value) == (0.5, False)
    assert combine_orders(none.value, b.value) == (None, False)
    assert combine_orders(0.8, 0.3) == (1.0, False)  # K sampled verdicts averaged

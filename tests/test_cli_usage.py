"""Usage errors of the command line, end to end: one line, no traceback, a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest


def dynalign(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """`dynalign ARGS` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "dynalign.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["plugins", "--bogus"], "No such option: --bogus"),
        (["prompts", "generate", "c.toml", "--n", "abc"], "'--n'"),
        (["values", "show"], "Missing"),
        (["config", "check"], "Missing"),
        (["--version"], "No such option: --version"),
    ],
)
def test_usage_errors_are_one_line_without_a_traceback(tmp_path, args, expected):
    result = dynalign(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0] and "--help" in lines[0]
    assert result.stdout == ""


def test_no_arguments_prints_help_not_an_error(tmp_path):
    result = dynalign(cwd=tmp_path)
    assert "Traceback" not in result.stdout + result.stderr
    assert "Usage: dynalign" in result.stdout + result.stderr and "Commands" in result.stdout + result.stderr


def test_help_exits_zero(tmp_path):
    result = dynalign("values", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "show" in result.stdout and result.stderr == ""

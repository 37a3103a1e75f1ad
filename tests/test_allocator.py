"""glibc keeps a CPU run's freed memory for reuse while training without checkpointing
(`dynalign_grpo.allocator`), and only then."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager

import pytest
from conftest import write_config
from test_grpo import TINY_RUN

from dynalign_grpo.allocator import _glibc

# freed inside the block, 256 MB of 2 MB blocks stay with the process; after it they go back
PROBE = """
import json, torch
from dynalign_grpo.allocator import freed_memory_kept

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def churn():
    blocks = [torch.ones(512 * 1024) for _ in range(128)]
    del blocks

churn()
before = rss()
with freed_memory_kept() as kept:
    churn()
    inside = rss()
after = rss()
print(json.dumps({"kept": kept, "inside": inside - before, "after": after - before}))
"""


@pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")
def test_freed_memory_stays_while_kept_and_goes_back_after():
    # in a child: the thresholds stay set for the life of a process
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout)
    assert probe["kept"] is True
    assert probe["inside"] > 200 * 2**20  # the freed blocks were kept
    assert probe["after"] < 64 * 2**20  # and returned on exit


@pytest.mark.parametrize("checkpointing", [True, False], ids=["checkpointing", "no-checkpointing"])
def test_training_keeps_freed_memory_only_without_checkpointing(
    tmp_path, tiny_model_dir, run_cli, monkeypatch, checkpointing
):
    import dynalign_grpo.optimizer as optimizer

    entered: list[bool] = []

    @contextmanager
    def recording():
        entered.append(True)
        yield True

    monkeypatch.setattr(optimizer, "freed_memory_kept", recording)
    text = TINY_RUN.format(model=tiny_model_dir, steps=1)
    if not checkpointing:
        text = text.replace("save_steps = 2 }", "save_steps = 2, trl = { gradient_checkpointing = false } }")
        assert "gradient_checkpointing" in text
    config = write_config(tmp_path / "tiny.toml", text)
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert entered == ([] if checkpointing else [True])

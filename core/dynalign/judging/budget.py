"""The failure budget every judge path keeps: a model that gives no valid answer `limit` times
in a row (a wrong endpoint, too few tokens for a verdict) stops the work with one line, instead
of silently scoring nothing."""

from __future__ import annotations

from dynalign.errors import DynalignError, JudgeError


class FailureBudget:
    """Counts invalid answers in a row (and in all); the `limit`-th in a row raises `error`.

    The message says who failed, how, the last reply and `fix`.
    """

    def __init__(
        self,
        limit: int,
        who: str,
        *,
        error: type[DynalignError] = JudgeError,
        failure: str = "gave no valid verdict",
        fix: str = "check the judge model, its endpoint and max_new_tokens",
    ) -> None:
        self.limit = limit
        self.who = who
        self.error = error
        self.failure = failure
        self.fix = fix
        self.in_a_row = 0
        self.total = 0

    def record(self, valid: bool, reply: str = "", who: str | None = None) -> None:
        """Count one answer (`who`: the model that gave it, default the budget's); raise once
        `limit` invalid ones came in a row."""
        if valid:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            snippet = " ".join(reply.split())[:80]
            raise self.error(
                f"{who or self.who} {self.failure} {self.in_a_row} times in a row "
                f"({self.total} in all; failure_budget = {self.limit}); last reply: {snippet!r}; {self.fix}"
            )

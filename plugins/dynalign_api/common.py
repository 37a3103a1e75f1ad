"""What the API backends share: options, a background event loop, the failure budget and
request/token accounting written to the run directory.

Flaky endpoints: the SDKs retry 429, 5xx and timeouts; a 200 whose body is not the expected
JSON (an HTML error page, an empty object) is retried here the same number of times. A request
that still fails is answered with empty text and counted; only `failure_budget` failures *in a
row* stop the job (a success resets the count), so a long job survives an endpoint that fails
now and then. Every HTTP attempt is counted, so `api_usage.json` shows the retries of requests
that finally failed too.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from dynalign.api import (
    ChatModel,
    ConfigError,
    Conversation,
    GenerationParams,
    ModelError,
    Options,
    atomic_write_text,
    read_json,
    redact_urls,
)

T = TypeVar("T")
USAGE_FILE = "api_usage.json"


class APIOptions(Options):
    """Options every API backend takes."""

    model: str = Field(description="Model name as the API knows it.")
    api_key_env: str = Field(description="Name of the environment variable holding the API key (never the key).")
    concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    timeout: float = Field(60.0, gt=0, description="Seconds before one request attempt times out.")
    max_retries: int = Field(3, ge=0, description="The SDK's retries (with backoff) on 429, 5xx and timeouts.")
    failure_budget: int = Field(
        10,
        ge=0,
        description="Requests in a row that may still fail after retries (answered with empty text) before stopping.",
    )


class _Loop:
    """One event loop in a daemon thread, shared by the API backends of this process, so async
    clients (and their connection pools) live across `chat` calls, also when the caller is
    itself inside a running loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coro: Awaitable[T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="dynalign-api", daemon=True).start()
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result()


LOOP = _Loop()
_usage_lock = threading.Lock()


class Usage:
    """Request and token counters of one backend, merged into `api_usage.json` of the run."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.counts: dict[str, float] = dict.fromkeys(
            ("requests", "attempts", "retries", "failures", "input_tokens", "output_tokens", "seconds"), 0
        )
        self._written: dict[str, float] = dict.fromkeys(self.counts, 0)

    def add(self, **amounts: float) -> None:
        """Add to the counters (called from the event-loop thread only). Retries are derived:
        HTTP attempts beyond one per finished request, successful or failed."""
        for key, amount in amounts.items():
            self.counts[key] += amount
        counts = self.counts
        counts["retries"] = max(0, counts["attempts"] - counts["requests"] - counts["failures"])

    def flush(self, run_dir: Path | None) -> None:
        """Add what was counted since the last flush to the run's `api_usage.json` (atomically)."""
        if run_dir is None:
            return
        with _usage_lock:
            target = Path(run_dir) / USAGE_FILE
            data = read_json(target, ModelError) if target.exists() else {}
            row = data.setdefault(self.label, dict.fromkeys(self.counts, 0))
            for key, value in self.counts.items():
                row[key] = round(row.get(key, 0) + value - self._written[key], 3)
            self._written = dict(self.counts)
            atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True) + "\n")


class MalformedReply(Exception):
    """A 200 reply whose body is not the expected JSON (an HTML error page, an empty object)."""


class APIChatModel(ChatModel):
    """Base of the API backends: sync `chat` over the SDK's async client, bounded concurrency,
    the SDK's retries plus a failure budget, and usage accounting."""

    options: APIOptions
    sdk_name = ""

    def __init__(self, options: Options | None = None, context: Any = None) -> None:
        super().__init__(options, context)
        self._client: Any = None
        self.usage = Usage(self.label())
        self.failed_in_a_row = 0

    def label(self) -> str:
        """How this backend is named in `api_usage.json`."""
        return f"{self.name}:{self.options.model}"

    def api_key(self) -> str:
        """The key from the environment variable the config names; a one-line error if unset."""
        key = os.environ.get(self.options.api_key_env)
        if not key:
            raise ConfigError(
                f"environment variable {self.options.api_key_env} is not set; "
                f"export it with the API key for the {self.name} backend"
            )
        return key

    def preflight(self) -> None:
        """The API key variable must be set."""
        self.api_key()

    def make_client(self, key: str) -> Any:
        """The SDK's async client (created on the background loop)."""
        raise NotImplementedError

    async def complete(self, client: Any, conversation: Conversation, params: GenerationParams) -> list[str]:
        """One request: `params.n` answers (or fewer, the rest sampled by the caller)."""
        raise NotImplementedError

    def classify(self, exc: BaseException) -> str:
        """ "transient" (the SDK retried it; counted against the budget), "malformed" (a 200 with a
        body that is not the expected JSON: retried here, then counted), "fatal" (an API or
        connection error, raised as a one-line ModelError) or "bug" (anything else, raised as is)."""
        raise NotImplementedError

    async def count_attempt(self, request: Any) -> None:
        """httpx request hook: one HTTP attempt (first try or retry) was sent."""
        self.usage.add(attempts=1)

    def run_all(self, jobs: Sequence[Callable[[Any], Awaitable[T]]]) -> list[T | None]:
        """Run `jobs(client)` with at most `concurrency` in flight; failed transient jobs give None."""
        key = self.api_key()

        async def main() -> list[T | None]:
            if self._client is None:
                self._client = self.make_client(key)
            semaphore = asyncio.Semaphore(self.options.concurrency)

            async def one(job: Callable[[Any], Awaitable[T]]) -> T | None:
                async with semaphore:
                    if self.failed_in_a_row > self.options.failure_budget:
                        return None  # the endpoint is down: stop sending, the error follows
                    started = time.perf_counter()
                    try:
                        result = await self._attempts(job)
                    finally:
                        self.usage.add(seconds=time.perf_counter() - started)
                    self.failed_in_a_row = 0 if result is not None else self.failed_in_a_row + 1
                    return result

            return list(await asyncio.gather(*(one(job) for job in jobs)))

        try:
            results = LOOP.run(main())
        finally:
            self.usage.flush(self.context.run_dir if self.context is not None else None)
        if self.failed_in_a_row > self.options.failure_budget:
            raise ModelError(
                f"{self.label()}: {self.failed_in_a_row} requests in a row failed after {self.options.max_retries} "
                f"retries each (failure_budget = {self.options.failure_budget}); "
                "check the server, rate limits or timeout"
            )
        return results

    async def _attempts(self, job: Callable[[Any], Awaitable[T]]) -> T | None:
        """One job: a malformed reply is retried (with backoff) up to `max_retries` times; a job
        that still fails is counted and gives None."""
        for attempt in range(self.options.max_retries + 1):
            try:
                return await job(self._client)
            except Exception as exc:
                kind = self.classify(exc)
                if kind == "bug":
                    raise
                if kind == "fatal":
                    raise self.fatal_error(exc) from exc
                if kind != "malformed" or attempt == self.options.max_retries:
                    break
                await asyncio.sleep(min(8.0, 0.25 * 2**attempt))
        self.usage.add(failures=1)
        return None

    def fatal_error(self, exc: BaseException) -> ModelError:
        """A one-line error for a failure retries cannot fix."""
        status = getattr(exc, "status_code", None)
        detail = str(getattr(exc, "message", "") or exc).splitlines()[0][:200]
        if status is None:
            where = redact_urls(getattr(self.options, "base_url", None) or "the API")
            return ModelError(
                f"{self.label()}: cannot reach {where}: {redact_urls(detail)}; check base_url and the server"
            )
        hint = {401: "check the key in " + self.options.api_key_env, 404: "check the model name"}.get(status, "")
        return ModelError(f"{self.label()}: API error {status}: {redact_urls(detail)}" + (f"; {hint}" if hint else ""))

    def chat(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        """`params.n` answers per conversation; answers of requests that failed after retries are ""."""
        answers = self.run_all([lambda client, c=c: self.complete(client, c, params) for c in conversations])
        return [list(a) + [""] * (params.n - len(a)) if a is not None else [""] * params.n for a in answers]

    def describe(self) -> dict[str, Any]:
        """Backend, model and endpoint (never the key)."""
        url = getattr(self.options, "base_url", None)
        return {"backend": self.name, "model": self.options.model, "base_url": redact_urls(url) if url else None}

"""Model backend `anthropic`: Claude models through the official `anthropic` SDK."""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from dynalign.api import Conversation, GenerationParams, require
from dynalign_api.common import APIChatModel, APIOptions, MalformedReply


class AnthropicOptions(APIOptions):
    """Options of the `anthropic` backend."""

    api_key_env: str = Field("ANTHROPIC_API_KEY", description="Name of the environment variable holding the API key.")
    base_url: str | None = Field(None, description="Another endpoint speaking the Anthropic messages API.")
    send_sampling: bool = Field(
        False,
        description="Send temperature/top_p (as extra body fields): current Claude models choose their own sampling "
        "and this SDK no longer takes them.",
    )


class AnthropicChatModel(APIChatModel):
    """Claude models through the official `anthropic` SDK (async client; no token probabilities).

    Judges using it sample K verdicts instead of reading probabilities.
    """

    name = "anthropic"
    aliases = ("claude",)
    Options = AnthropicOptions
    options: AnthropicOptions

    def make_client(self, key: str) -> Any:
        """An `AsyncAnthropic` client with the configured endpoint, timeout and retries."""
        anthropic = require("anthropic", "api")

        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=self.options.base_url,
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            http_client=anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [self.count_attempt]}),
        )

    def classify(self, exc: BaseException) -> str:
        """Timeouts and 429/5xx after retries count; malformed bodies are retried, then count;
        other API errors are fatal."""
        anthropic = require("anthropic", "api")

        if isinstance(exc, json.JSONDecodeError | anthropic.APIResponseValidationError | MalformedReply):
            return "malformed"
        if isinstance(exc, anthropic.APITimeoutError):
            return "transient"
        if isinstance(exc, anthropic.APIStatusError):
            return "transient" if exc.status_code in (408, 409, 429) or exc.status_code >= 500 else "fatal"
        return "fatal" if isinstance(exc, anthropic.APIError) else "bug"

    async def complete(self, client: Any, conversation: Conversation, params: GenerationParams) -> list[str]:
        """One request, one answer (the messages API has no `n`)."""
        system = "\n\n".join(m["content"] for m in conversation if m["role"] == "system")
        messages = [{"role": m["role"], "content": m["content"]} for m in conversation if m["role"] != "system"]
        kwargs: dict[str, Any] = {"max_tokens": params.max_new_tokens}
        if system:
            kwargs["system"] = system
        if self.options.send_sampling:
            kwargs["extra_body"] = {"temperature": min(params.temperature, 1.0), "top_p": params.top_p}
        raw = await client.messages.with_raw_response.create(model=self.options.model, messages=messages, **kwargs)
        reply = raw.parse()
        if inspect.isawaitable(reply):  # the SDKs differ in whether parse() is async
            reply = await reply
        if not isinstance(getattr(reply, "content", None), list) or getattr(reply, "usage", None) is None:
            raise MalformedReply(f"a 200 reply without content: {str(reply)[:80]!r}")
        self.usage.add(
            requests=1,
            input_tokens=reply.usage.input_tokens or 0,
            output_tokens=reply.usage.output_tokens or 0,
        )
        return ["".join(block.text for block in reply.content if getattr(block, "type", "") == "text")]

    def chat(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        """`params.n` answers per conversation, one request each; failed requests give ""."""
        jobs = [(i, c) for i, c in enumerate(conversations) for _ in range(params.n)]
        answers = self.run_all([lambda client, c=c: self.complete(client, c, params) for _, c in jobs])
        out: list[list[str]] = [[] for _ in conversations]
        for (index, _), answer in zip(jobs, answers):
            out[index].append(answer[0] if answer else "")
        return out

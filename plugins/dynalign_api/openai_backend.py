"""Model backend `openai`: the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from dynalign.api import Conversation, GenerationParams, require
from dynalign_api.common import APIChatModel, APIOptions, MalformedReply


class OpenAIOptions(APIOptions):
    """Options of the `openai` backend."""

    api_key_env: str = Field("OPENAI_API_KEY", description="Name of the environment variable holding the API key.")
    base_url: str | None = Field(None, description="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1.")
    top_logprobs: int = Field(20, ge=1, le=20, description="Alternatives asked for when reading token probabilities.")
    prefill: bool = Field(
        False,
        description="Send `assistant_prefix` as a partial assistant turn that the server continues (vLLM: "
        "continue_final_message; llama.cpp); otherwise the prefix is asked for in the user turn.",
    )


class OpenAIChatModel(APIChatModel):
    """Chat completions through the official `openai` SDK (async client, bounded concurrency)."""

    name = "openai"
    aliases = ("openai-compatible",)
    Options = OpenAIOptions
    supports_token_probs: ClassVar[bool] = True
    options: OpenAIOptions

    def make_client(self, key: str) -> Any:
        """An `AsyncOpenAI` client with the configured endpoint, timeout and retries."""
        openai = require("openai", "api")

        return openai.AsyncOpenAI(
            api_key=key,
            base_url=self.options.base_url,
            timeout=self.options.timeout,
            max_retries=self.options.max_retries,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [self.count_attempt]}),
        )

    def classify(self, exc: BaseException) -> str:
        """Timeouts and 429/5xx after retries count; malformed bodies are retried, then count;
        other API errors are fatal."""
        openai = require("openai", "api")

        if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError | MalformedReply):
            return "malformed"
        if isinstance(exc, openai.APITimeoutError):
            return "transient"
        if isinstance(exc, openai.APIStatusError):
            return "transient" if exc.status_code in (408, 409, 429) or exc.status_code >= 500 else "fatal"
        return "fatal" if isinstance(exc, openai.APIError) else "bug"

    async def _create(self, client: Any, **kwargs: Any) -> Any:
        raw = await client.chat.completions.with_raw_response.create(model=self.options.model, **kwargs)
        reply = raw.parse()
        if inspect.isawaitable(reply):  # the SDKs differ in whether parse() is async
            reply = await reply
        choices = getattr(reply, "choices", None)
        if not isinstance(choices, list) or not all(getattr(c, "message", None) is not None for c in choices):
            raise MalformedReply(f"a 200 reply without choices: {str(reply)[:80]!r}")
        usage = reply.usage
        self.usage.add(
            requests=1,
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )
        return reply

    async def complete(self, client: Any, conversation: Conversation, params: GenerationParams) -> list[str]:
        """One request with `n` choices."""
        kwargs: dict[str, Any] = {
            "messages": list(conversation),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.n > 1:
            kwargs["n"] = params.n
        if params.seed is not None:
            kwargs["seed"] = params.seed
        reply = await self._create(client, **kwargs)
        return [choice.message.content or "" for choice in reply.choices]

    def next_token_probs(
        self, conversations: Sequence[Conversation], choices: Sequence[str], assistant_prefix: str = ""
    ) -> list[dict[str, float]]:
        """Probabilities of `choices` as the first token of a one-token reply, from `top_logprobs`.

        Tokens equal to a choice up to surrounding whitespace add up; choices not among the
        top alternatives get 0. A failed request gives all zeros.
        """
        requests = [self._probe(c, choices, assistant_prefix) for c in conversations]
        prefilled = self.options.prefill and bool(assistant_prefix)
        # vLLM by default closes a final assistant message and opens a new turn after it; these
        # ask it to render the prefix open, as the `hf` backend does (servers that continue it
        # anyway ignore them).
        extra = {"extra_body": {"continue_final_message": True, "add_generation_prompt": False}} if prefilled else {}

        async def probe(client: Any, messages: list[dict[str, str]]) -> dict[str, float]:
            reply = await self._create(
                client,
                messages=messages,
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=self.options.top_logprobs,
                **extra,
            )
            probs = dict.fromkeys(choices, 0.0)
            content = reply.choices[0].logprobs.content if reply.choices and reply.choices[0].logprobs else None
            for alternative in (content[0].top_logprobs if content else []) or []:
                token = alternative.token.strip()
                if token in probs:
                    probs[token] += math.exp(alternative.logprob)
            return probs

        results = self.run_all([lambda client, m=m: probe(client, m) for m in requests])
        return [r if r is not None else dict.fromkeys(choices, 0.0) for r in results]

    def _probe(self, conversation: Conversation, choices: Sequence[str], prefix: str) -> list[dict[str, str]]:
        messages = [dict(m) for m in conversation]
        if self.options.prefill and prefix:
            return [*messages, {"role": "assistant", "content": prefix}]
        ask = f"Reply with exactly one of {', '.join(choices)} and nothing else"
        ask += f" (it completes `{prefix.strip()}`)." if prefix else "."
        if messages and messages[-1]["role"] == "user":
            messages[-1]["content"] = f"{messages[-1]['content']}\n\n{ask}"
        else:
            messages.append({"role": "user", "content": ask})
        return messages

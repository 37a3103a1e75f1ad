"""`word-rules`: reward the share of a completion's words that match a regex, keywords present,
and the word an answer opens with."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from dynalign.api import Options, Rewarder


class WordRulesOptions(Options):
    """Options of the `word-rules` rewarder."""

    word_pattern: str | None = Field(None, description="Regex; reward = share of words fully matching it.")
    keywords: list[str] = Field(default_factory=list, description="Each distinct keyword present adds keyword_bonus.")
    keyword_bonus: float = 1.0
    openers: list[str] = Field(default_factory=list, description="Adds opener_bonus if the first word is one of these.")
    opener_bonus: float = 1.0
    max_words: int | None = Field(None, ge=1, description="Answers longer than this get 0.")


class WordRulesRewarder(Rewarder):
    """Scores completions by simple word rules; no model involved."""

    name = "word-rules"
    Options = WordRulesOptions
    options: WordRulesOptions

    def __init__(self, options: Options | None = None, context: Any = None) -> None:
        super().__init__(options, context)
        self._pattern = re.compile(self.options.word_pattern) if self.options.word_pattern else None
        self._keyword_hits: list[int] = []

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """One score per completion: matching-word share plus keyword bonuses."""
        return [self._score(completion[-1]["content"]) for completion in completions]

    def _score(self, text: str) -> float:
        words = text.split()
        if self.options.max_words is not None and len(words) > self.options.max_words:
            return 0.0
        score = 0.0
        if self._pattern is not None and words:
            score += sum(bool(self._pattern.fullmatch(w)) for w in words) / len(words)
        first = words[0].strip(".,:;!?*#").lower() if words else ""
        if first in {o.lower() for o in self.options.openers}:
            score += self.options.opener_bonus
        lowered = text.lower()
        hits = sum(k.lower() in lowered for k in set(self.options.keywords))
        self._keyword_hits.append(hits)
        return score + hits * self.options.keyword_bonus

    def pop_metrics(self) -> dict[str, float]:
        """Mean number of distinct keywords per completion since the last call."""
        hits, self._keyword_hits = self._keyword_hits, []
        return {"keyword_hits": sum(hits) / len(hits)} if hits else {}

"""Filters a candidate prompt must pass: not empty or refused, length bounds, no exact or near
duplicate, ROUGE-L below a threshold against every accepted prompt.

The ROUGE-L check stays fast for thousands of prompts: each prompt is tokenized once (with
rouge-score's own tokenizer), and an inverted index bounds the longest common subsequence
by the bag-of-tokens overlap (LCS <= overlap, so F <= 2*overlap/(m+n)); only prompts whose
bound reaches the threshold are scored exactly, by rouge-score's RougeScorer.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from dynalign.api import require

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i cannot|i can'?t|i can not|i'?m unable|i am unable|i won'?t|"
    r"as an ai\b|as a language model|i'?m not able|i am not able)",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """Text for near-duplicate detection: lower case, letters and digits only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def is_refusal(text: str) -> bool:
    """True if the reply starts like a refusal or an 'as an AI' disclaimer."""
    return bool(_REFUSAL.match(text))


class _Posting:
    """Documents holding one token, with counts, in growable numpy arrays."""

    __slots__ = ("ids", "counts", "size")

    def __init__(self) -> None:
        import numpy as np

        self.ids = np.empty(8, dtype=np.int32)
        self.counts = np.empty(8, dtype=np.int32)
        self.size = 0

    def add(self, doc: int, count: int) -> None:
        import numpy as np

        if self.size == len(self.ids):
            self.ids = np.concatenate([self.ids, np.empty_like(self.ids)])
            self.counts = np.concatenate([self.counts, np.empty_like(self.counts)])
        self.ids[self.size], self.counts[self.size] = doc, count
        self.size += 1


class _MemoTokenizer:
    """rouge-score's default tokenizer, remembering each text's tokens."""

    def __init__(self) -> None:
        self._inner = require("rouge_score.tokenizers", "prompts").DefaultTokenizer(use_stemmer=False)
        self._memo: dict[str, list[str]] = {}

    def tokenize(self, text: str) -> list[str]:
        tokens = self._memo.get(text)
        if tokens is None:
            tokens = self._memo[text] = self._inner.tokenize(text)
        return tokens


class RougeIndex:
    """Accepted prompts, queried for the highest ROUGE-L F-measure against a candidate."""

    def __init__(self, threshold: float = 0.7) -> None:
        self.threshold = threshold
        self.tokenizer = _MemoTokenizer()
        self._scorer = require("rouge_score.rouge_scorer", "prompts").RougeScorer(["rougeL"], tokenizer=self.tokenizer)
        self._texts: list[str] = []
        self._lengths: list[int] = []
        self._postings: dict[str, _Posting] = {}
        self.exact_checks = 0

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, text: str) -> None:
        """Index an accepted prompt."""
        doc = len(self._texts)
        tokens = self.tokenizer.tokenize(text)
        self._texts.append(text)
        self._lengths.append(len(tokens))
        for token, count in Counter(tokens).items():
            self._postings.setdefault(token, _Posting()).add(doc, count)

    def most_similar(self, text: str) -> tuple[float, int | None]:
        """(score, index) of the first accepted prompt with ROUGE-L >= threshold, else (best bound
        below threshold, None). Exact scores are computed only where the bound allows a hit."""
        import numpy as np

        tokens = self.tokenizer.tokenize(text)
        if not tokens or not self._texts:
            return 0.0, None
        overlap = np.zeros(len(self._texts), dtype=np.int32)
        for token, count in Counter(tokens).items():
            posting = self._postings.get(token)
            if posting is not None:
                ids = posting.ids[: posting.size]
                overlap[ids] += np.minimum(posting.counts[: posting.size], count)
        bound = 2.0 * overlap / (np.asarray(self._lengths, dtype=np.float64) + len(tokens))
        for doc in np.flatnonzero(bound >= self.threshold - 1e-9):
            self.exact_checks += 1
            score = self._scorer.score(self._texts[doc], text)["rougeL"].fmeasure
            if score >= self.threshold:
                return float(score), int(doc)
        return float(bound.max()), None


class CandidateFilter:
    """Applies every filter in order and counts rejections by reason."""

    def __init__(self, min_words: int, max_words: int, rouge_threshold: float) -> None:
        self.min_words, self.max_words = min_words, max_words
        self.rouge = RougeIndex(rouge_threshold)
        self._exact: set[str] = set()
        self._near: set[str] = set()
        self.rejections: Counter[str] = Counter()

    def reason(self, text: Any) -> str | None:
        """Why `text` cannot be accepted now (a rejection reason), or None if it passes."""
        if not isinstance(text, str) or not text.strip():
            return "empty"
        text = text.strip()
        if is_refusal(text):
            return "refused"
        words = len(text.split())
        if words < self.min_words:
            return "too_short"
        if words > self.max_words:
            return "too_long"
        if text in self._exact:
            return "exact_duplicate"
        if normalize(text) in self._near:
            return "near_duplicate"
        if not self.rouge.tokenizer.tokenize(text):
            return "empty"
        if self.rouge.most_similar(text)[1] is not None:
            return "rouge_similar"
        return None

    def check(self, text: Any) -> bool:
        """True if `text` passes; otherwise count its rejection reason."""
        why = self.reason(text)
        if why is not None:
            self.rejections[why] += 1
        return why is None

    def accept(self, text: str) -> None:
        """Record an accepted prompt so later candidates are compared with it."""
        text = text.strip()
        self._exact.add(text)
        self._near.add(normalize(text))
        self.rouge.add(text)

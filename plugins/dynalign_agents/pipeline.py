"""The agents' loop: goals -> tasks -> filters -> critique -> refine, in waves.

Each wave sends every role's requests to its backend together (an API backend runs them
concurrently up to its limit). Every decision is a pure function of the seed and the model
answers, and answers are cached, so a rerun replays the same set without asking again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynalign.api import DynalignError, GenerationParams, ValueSpec, end_line
from dynalign_agents.cache import Agent
from dynalign_agents.filters import CandidateFilter, normalize
from dynalign_agents.templates import clean_text, parse_critique, parse_list

SCORE_MIN, SCORE_MAX = 1, 5
DIGITS = [str(s) for s in range(SCORE_MIN, SCORE_MAX + 1)]


@dataclass
class Candidate:
    """A prompt on its way through critique and refinement."""

    text: str
    goal: str
    pillar: str
    theme: str
    call: str
    rounds: int = 0
    score: float | None = None
    reason: str = ""


@dataclass
class Progress:
    """Counts shown on the progress bar and written to the summary."""

    accepted: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def bump(self, name: str, by: int = 1) -> None:
        """Increase a diagnostic count."""
        self.counts[name] = self.counts.get(name, 0) + by


def hash_text(text: str) -> int:
    """A stable 31-bit hash (Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def prompt_id(text: str) -> str:
    """A stable id for a prompt: the first 12 hex digits of its SHA-256 (as the `file` source)."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:12]


class Pipeline:
    """Runs the agents until `n` prompts are accepted; `run()` returns the accepted rows."""

    def __init__(
        self,
        value: ValueSpec,
        opts: Any,
        agents: dict[str, Agent],
        templates: dict[str, str],
        seed: int,
        accepted_path: Path | None = None,
    ) -> None:
        self.value, self.opts, self.agents, self.templates, self.seed = value, opts, agents, templates, seed
        self.filter = CandidateFilter(opts.min_words, opts.max_words, opts.rouge_threshold)
        self.progress = Progress(rejections=self.filter.rejections)  # type: ignore[arg-type]
        self.accepted: list[dict[str, Any]] = []
        self.accepted_path = accepted_path
        self._kept = _read_ids(accepted_path)
        self._goals_seen: set[str] = set()
        self._slot = 0
        self._weights = {p: float(opts.emphasis.get(p, 1.0)) for p in value.pillar_names}
        self._current = dict.fromkeys(self._weights, 0.0)
        self._pillars = {p.name: p.description.strip() for p in value.pillars}
        self.models = {role: agent.description for role, agent in agents.items()}

    # -- scheduling ------------------------------------------------------------------------
    def _next_pillar(self) -> str:
        """Smooth weighted round robin: balanced, deterministic, proportional to `emphasis`."""
        total = sum(self._weights.values())
        for name, weight in self._weights.items():
            self._current[name] += weight
        chosen = max(self._current, key=lambda name: self._current[name])
        self._current[chosen] -= total
        return chosen

    def _theme(self, slot: int) -> str:
        themes = list(self.value.seed_themes)
        cycle, index = divmod(slot, len(themes))
        random.Random(f"{self.seed}:themes:{cycle}").shuffle(themes)
        return themes[index]

    def _params(self, role: str, wave: int, step: int = 0) -> GenerationParams:
        temperature = 0.0 if role == "critic" else self.opts.temperature
        return GenerationParams(
            max_new_tokens=self.opts.max_new_tokens,
            temperature=temperature,
            top_p=self.opts.top_p,
            seed=hash_text(f"{self.seed}:{role}:{wave}:{step}"),
        )

    def _fill(self, role: str, **fields: Any) -> list[dict[str, str]]:
        pillar = fields.get("pillar", "")
        base = {
            "value_title": self.value.title,
            "definition": self.value.definition.strip(),
            "pillars": self.value.pillars_text(),
            "pillar_description": self._pillars.get(pillar, ""),
            "theme": "",
            "score_min": SCORE_MIN,
            "score_max": SCORE_MAX,
        }
        return [{"role": "user", "content": self.templates[role].format(**{**base, **fields})}]

    # -- the loop --------------------------------------------------------------------------
    def run(self, bar: Any = None) -> list[dict[str, Any]]:
        """Generate waves until `n` prompts are accepted (or the loop stalls)."""
        wave = idle = 0
        while len(self.accepted) < self.opts.n:
            before = len(self.accepted)
            self._wave(wave, bar)
            idle = 0 if len(self.accepted) > before else idle + 1
            if idle >= self.opts.stall_waves:
                raise DynalignError(
                    f"stalled: no prompt accepted in {idle} waves ({len(self.accepted)} of {self.opts.n} accepted, "
                    f"rejections {dict(self.filter.rejections)}); use a stronger model, lower min_score or n"
                )
            wave += 1
        return self.accepted

    def _wave(self, wave: int, bar: Any) -> None:
        remaining = self.opts.n - len(self.accepted)
        per_call = self.opts.goals_per_call * self.opts.tasks_per_goal
        count = max(1, min(self.opts.calls_per_wave, math.ceil(remaining / per_call)))
        slots = []
        for _ in range(count):
            slots.append((f"goal:{self._slot}", self._theme(self._slot), self._next_pillar()))
            self._slot += 1
        requests = [(cid, self._fill("goal", theme=t, pillar=p, k=self.opts.goals_per_call)) for cid, t, p in slots]
        answers = self.agents["goal"].chat(requests, self._params("goal", wave))
        goals = []
        for (cid, theme, pillar), answer in zip(slots, answers):
            for goal in parse_list(answer or "")[: self.opts.goals_per_call]:
                key = normalize(goal)
                if key in self._goals_seen:
                    self.progress.bump("duplicate_goals")
                    continue
                self._goals_seen.add(key)
                goals.append((f"{cid}:{len(goals)}", goal, theme, pillar))
        candidates = []
        for variant in range(self.opts.tasks_per_goal):  # one batch per variant: its own seed, so
            calls = [(f"task:{gid}:{variant}", g, t, p) for gid, g, t, p in goals]  # same-goal requests differ
            requests = [(cid, self._fill("task", goal=g, theme=t, pillar=p)) for cid, g, t, p in calls]
            answers = self.agents["task"].chat(requests, self._params("task", wave, variant))
            candidates += [Candidate(clean_text(a or ""), g, p, t, cid) for (cid, g, t, p), a in zip(calls, answers)]
        for step in range(self.opts.max_refinements + 1):
            candidates = self._critique_round(candidates, wave, step, bar)
            if not candidates or len(self.accepted) >= self.opts.n:
                return
            if step == self.opts.max_refinements:
                self.filter.rejections["critic_rejected"] += len(candidates)
                return
            candidates = self._refine(candidates, wave, step)

    def _critique_round(self, candidates: list[Candidate], wave: int, step: int, bar: Any) -> list[Candidate]:
        """Filter, critique and accept; returns the candidates the critic turned down."""
        pending, in_wave = [], set()
        for cand in candidates:
            if cand.text in in_wave:
                self.filter.rejections["exact_duplicate"] += 1
            elif self.filter.check(cand.text):
                in_wave.add(cand.text)
                pending.append(cand)
        self._score(pending, wave, step)
        declined = []
        for cand in pending:
            if len(self.accepted) >= self.opts.n:
                break
            if cand.score is None or cand.score < self.opts.min_score:
                declined.append(cand)
            elif self.filter.check(cand.text):  # an earlier prompt of this wave may have taken its place
                self._accept(cand, wave)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.set_postfix(
                    rejected=sum(self.filter.rejections.values()), refined=self.progress.counts.get("refined", 0)
                )
        return declined

    def _score(self, pending: list[Candidate], wave: int, step: int) -> None:
        critic = self.agents["critic"]
        requests = [
            (
                f"critic:{c.call}:{step}",
                self._fill("critic", prompt=c.text, goal=c.goal, theme=c.theme, pillar=c.pillar),
            )
            for c in pending
        ]
        answers = critic.chat(requests, self._params("critic", wave, step))
        unscored = []
        for cand, request, answer in zip(pending, requests, answers):
            cand.score, cand.reason = parse_critique(answer or "", SCORE_MIN, SCORE_MAX)
            if cand.score is None:
                unscored.append((cand, request))
        if unscored:
            self.progress.bump("critic_unscored", len(unscored))
        if unscored and self.opts.critic_probs and critic.model.supports_token_probs:
            probs = critic.probs([r for _, r in unscored], DIGITS, "Score: ")
            for (cand, _), dist in zip(unscored, probs):
                total = sum(dist.values())
                if total > 0:
                    cand.score = round(sum(int(d) * p for d, p in dist.items()) / total, 3)
                    cand.reason = cand.reason or "scored from the critic's digit probabilities"

    def _refine(self, declined: list[Candidate], wave: int, step: int) -> list[Candidate]:
        requests = []
        for c in declined:
            reason = c.reason or "the critic gave no usable score; make the prompt clearer and more specific"
            requests.append(
                (
                    f"refine:{c.call}:{step}",
                    self._fill("refiner", prompt=c.text, reason=reason, goal=c.goal, theme=c.theme, pillar=c.pillar),
                )
            )
        answers = self.agents["refiner"].chat(requests, self._params("refiner", wave, step))
        self.progress.bump("refined", len(declined))
        return [
            Candidate(clean_text(a or ""), c.goal, c.pillar, c.theme, c.call, rounds=step + 1)
            for c, a in zip(declined, answers)
        ]

    def _accept(self, cand: Candidate, wave: int) -> None:
        self.filter.accept(cand.text)
        row = {
            "id": prompt_id(cand.text),
            "prompt": cand.text,
            "goal": cand.goal,
            "pillar": cand.pillar,
            "theme": cand.theme,
            "critic_score": float(cand.score or 0.0),
            "critic_reason": cand.reason,
            "refinement_rounds": cand.rounds,
            "wave": wave,
            "generator_models": dict(self.models),
        }
        self.accepted.append(row)
        if self.accepted_path is not None and row["id"] not in self._kept:
            self._kept.add(row["id"])
            with self.accepted_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                os.fsync(handle.fileno())


def _read_ids(path: Path | None) -> set[str]:
    if path is None or not path.exists():
        return set()
    end_line(path)
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(json.loads(line)["id"])
        except (json.JSONDecodeError, KeyError):
            continue
    return ids

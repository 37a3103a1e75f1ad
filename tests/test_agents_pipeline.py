"""The `agents` prompt generator: scripted agents through accept / refine / reject / dedup /
resume, bad input, the ROUGE-L index against brute force, an OpenAI-compatible server, SmolLM2."""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest

from dynalign.api import RunContext
from dynalign.errors import ConfigError, DynalignError, ModelError, ValueSpecError
from dynalign.plugins import load_registry
from dynalign.testing import ScriptedChatModel, check_component, scripted_plugin
from dynalign_agents.filters import RougeIndex
from dynalign_agents.generator import AgentsPromptGenerator

WORDS = (
    "garden budget neighbor council river school clinic ledger sister robot harvest volunteer tenant bridge "
    "storm library mentor grant pension bakery ferry vaccine playground survey orchard trail union workshop "
    "festival pharmacy archive canal museum lantern tractor mural kettle compass blanket violin harbor"
).split()
KINDS = ("ok", "vague", "hopeless", "similar", "shout", "refuse", "short", "blank")


def _words(seed: str, count: int) -> list[str]:
    return random.Random(seed).sample(WORDS, count)


def fake_reply(conversation: list[dict[str, str]], sample: int) -> str:
    """Agents as pure functions of their input: each goal kind exercises one path."""
    text = conversation[-1]["content"]
    if "distinct goals" in text:
        theme = re.search(r"Theme: (.+)", text).group(1)
        pillar = re.search(r"pillar (\w+):", text).group(1)
        return "Sure:\n" + "\n".join(f"{i + 1}. [{kind}] {pillar} in {theme}" for i, kind in enumerate(KINDS))
    if text.startswith("Goal: "):
        goal = text.splitlines()[0][6:]
        kind, topic = re.match(r"\[(\w+)\] (.+)", goal).groups()
        base = f"How do I handle {' '.join(_words(topic, 12))} for my family this spring?"
        if kind == "ok":
            return base
        if kind == "similar":
            return base.replace("spring", "autumn")
        if kind == "shout":
            return "Prompt: " + base.upper().replace("?", "!!")
        if kind in ("vague", "hopeless"):
            return f"Help me with {' '.join(_words(topic + kind, 10))}, it is {kind} and I need advice."
        return {"refuse": "I'm sorry, but I can't help with that.", "short": "Help me now.", "blank": "  "}[kind]
    if "Judge its clarity" in text:
        prompt = re.search(r"<<<\n(.+?)\n>>>", text, re.S).group(1)
        if "vague" in prompt or "hopeless" in prompt:
            return "Score: 2\nReason: too vague; add who is involved."
        return "Score: 5\nReason: clear, realistic and demanding."
    if "was criticised" in text:
        prompt = re.search(r"<<<\n(.+?)\n>>>", text, re.S).group(1)
        return prompt.replace("vague", "concrete, with my two kids")
    raise AssertionError(f"unexpected request: {text[:80]}")


class FakeAgents(ScriptedChatModel):
    """Scripted agents; `kill_after` simulates a kill (KeyboardInterrupt) after that many requests."""

    name = "fake-agents"
    supports_token_probs = False
    reply = staticmethod(fake_reply)
    requests = 0
    kill_after: int | None = None

    def chat(self, conversations, params):  # noqa: D102
        for _ in conversations:
            FakeAgents.requests += 1
            if FakeAgents.kill_after is not None and FakeAgents.requests > FakeAgents.kill_after:
                raise KeyboardInterrupt
        return super().chat(conversations, params)


class EmptyAfter(ScriptedChatModel):
    """Agents that answer properly for `good` requests, then return empty strings forever."""

    name = "empty-after"
    supports_token_probs = False
    reply = staticmethod(fake_reply)
    good = 0
    seen = 0

    def chat(self, conversations, params):  # noqa: D102
        answers = super().chat(conversations, params)
        out = []
        for answer in answers:
            EmptyAfter.seen += 1
            out.append(answer if EmptyAfter.seen <= EmptyAfter.good else [""])
        return out


@pytest.fixture
def context(ca_value) -> RunContext:
    registry = load_registry(extra_plugins=[scripted_plugin(FakeAgents, EmptyAfter)])
    FakeAgents.requests, FakeAgents.kill_after = 0, None
    return RunContext(value=ca_value, registry=registry, seed=3)


def make(context: RunContext, backend: str = "fake-agents", **options) -> AgentsPromptGenerator:
    base = {"n": 12, "held_out": 3, "model": {"backend": backend}, "progress": False, "max_refinements": 1}
    base["goals_per_call"] = len(KINDS)
    return context.build("prompt_generator", "agents", {**base, **options}, "prompts.options")


def test_component_contract():
    check_component(AgentsPromptGenerator)


def test_pipeline_accepts_refines_rejects_and_dedups(context, tmp_path):
    generator = make(context)
    prompts = generator.generate_to(context.value, tmp_path)
    rows = [r.model_dump() for r in (*prompts.train, *prompts.held_out)]
    assert (len(prompts.train), len(prompts.held_out)) == (9, 3)
    assert not {r.id for r in prompts.train} & {r.id for r in prompts.held_out}
    rejections = generator.last_summary["rejections"]
    for reason in ("exact_duplicate", "near_duplicate", "rouge_similar", "refused", "too_short", "critic_rejected"):
        assert rejections.get(reason, 0) > 0, (reason, rejections)
    assert rejections.get("empty", 0) > 0  # the blank task answers
    texts = [r["prompt"] for r in rows]
    assert not any("hopeless" in t or "autumn" in t or t.isupper() for t in texts)
    refined = [r for r in rows if r["refinement_rounds"] == 1]
    assert refined and all("concrete, with my two kids" in r["prompt"] for r in refined)
    assert all(r["critic_score"] == 5.0 and r["critic_reason"] and r["goal"].startswith("[") for r in rows)
    assert {r["pillar"] for r in rows} <= set(context.value.pillar_names) and len({r["pillar"] for r in rows}) > 1
    assert all(r["generator_models"]["critic"] == "fake-agents" for r in rows)
    on_disk = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in on_disk] == [r.id for r in prompts.train]
    from datasets import load_from_disk

    dataset = load_from_disk(str(tmp_path / "dataset"))
    assert dataset["train"]["prompt"] == [r.prompt for r in prompts.train]
    assert dataset["held_out"]["id"] == [r.id for r in prompts.held_out]


def test_rerun_makes_no_model_calls_and_same_set(context, tmp_path):
    first = make(context).generate_to(context.value, tmp_path)
    made = FakeAgents.requests
    for name in ("cache.jsonl", "accepted.jsonl"):  # a kill mid-write leaves a torn last line
        with (tmp_path / "work" / name).open("a") as handle:
            handle.write('{"key": "torn')
    again = make(context).generate_to(context.value, tmp_path)
    assert FakeAgents.requests == made
    assert again == first
    for name in ("cache.jsonl", "accepted.jsonl"):  # the torn line was closed: later appends stay parseable
        assert (tmp_path / "work" / name).read_text().endswith('{"key": "torn\n')


@pytest.mark.parametrize("kill_after", [1, 9, 23, 40])
def test_kill_and_resume_gives_the_same_set(context, tmp_path, kill_after):
    reference = make(context).generate_to(context.value, tmp_path / "reference")
    total = FakeAgents.requests
    FakeAgents.requests, FakeAgents.kill_after = 0, kill_after
    with pytest.raises(KeyboardInterrupt):
        make(context).generate_to(context.value, tmp_path / "killed")
    cache = tmp_path / "killed" / "work" / "cache.jsonl"
    answered = len(cache.read_text().splitlines()) if cache.exists() else 0
    FakeAgents.requests, FakeAgents.kill_after = 0, None
    resumed = make(context).generate_to(context.value, tmp_path / "killed")
    assert resumed == reference
    assert FakeAgents.requests == total - answered  # only calls never answered are asked again
    kept = [
        json.loads(line)["id"] for line in (tmp_path / "killed" / "work" / "accepted.jsonl").read_text().splitlines()
    ]
    assert len(kept) == len(set(kept)) == 12


def test_split_is_seeded(context, tmp_path):
    a = make(context, seed=1).generate_to(context.value, tmp_path / "a")
    b = make(context, seed=1).generate_to(context.value, tmp_path / "b")
    assert a == b
    assert len({r.id for r in (*a.train, *a.held_out)}) == 12


def test_emphasis_biases_pillars(context):
    generator = make(context, n=30, held_out=2, emphasis={"Vitality": 5.0, "Knowledge": 1.0, "Power": 0.0})
    prompts = generator.generate_to(context.value, None)
    pillars = [r.pillar for r in (*prompts.train, *prompts.held_out)]
    assert pillars.count("Vitality") > 2 * max(pillars.count("Knowledge"), pillars.count("Benevolence"))
    assert "Power" not in pillars


def test_inside_a_run_work_state_lives_in_run_dir(context, tmp_path):
    context.run_dir = tmp_path
    prompts = make(context).generate(context.value)
    assert (tmp_path / "prompt_generation" / "work" / "cache.jsonl").exists()
    assert len(prompts.train) == 9


def test_template_missing_placeholder_is_one_line_config_error(context):
    with pytest.raises(ConfigError) as info:
        make(context, templates={"task": "Write a realistic prompt."})
    message = str(info.value)
    assert "{goal}" in message and "prompts.options.templates" in message and "\n" not in message


def test_value_template_missing_placeholder(context):
    value = context.value.model_copy(update={"templates": {"refiner": "Rewrite {prompt}."}})
    with pytest.raises(ConfigError, match=r"refiner template lacks the placeholder \{reason\}"):
        make(context).generate_to(value, None)


def test_value_without_seed_themes(context):
    value = context.value.model_copy(update={"seed_themes": ()})
    with pytest.raises(ValueSpecError, match="no seed_themes"):
        make(context).generate_to(value, None)


@pytest.mark.parametrize("options", [{"n": 0}, {"n": -3}, {"n": 4, "held_out": 4}, {"emphasis": {"Power": -1}}])
def test_bad_options(context, options):
    with pytest.raises(ConfigError) as info:
        make(context, **options)
    assert "\n" not in str(info.value)


def test_empty_outputs_stop_within_budget_and_keep_accepted(context, tmp_path):
    EmptyAfter.good, EmptyAfter.seen = 100, 0
    generator = make(context, backend="empty-after", n=40, failure_budget=5)
    with pytest.raises(ModelError) as info:
        generator.generate_to(context.value, tmp_path)
    message = str(info.value)
    assert "5 times in a row" in message and "kept in" in message and "\n" not in message
    kept = (tmp_path / "work" / "accepted.jsonl").read_text().splitlines()
    assert 0 < len(kept) < 40
    # the budget is checked after each batch: at most one wave's task batch of requests beyond it
    assert EmptyAfter.seen - EmptyAfter.good <= 3 * len(KINDS) * 2


def test_stall_is_reported(context):
    generator = make(context, min_words=30, stall_waves=2)  # every fake prompt is too short
    with pytest.raises(DynalignError, match="stalled: no prompt accepted in 2 waves"):
        generator.generate_to(context.value, None)


def test_rouge_index_matches_brute_force():
    from rouge_score.rouge_scorer import RougeScorer

    rng = random.Random(0)
    vocab = WORDS[:15]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(4, 14))) for _ in range(150)]
    scorer = RougeScorer(["rougeL"])
    index = RougeIndex(0.7)
    for text in texts:
        brute = [scorer.score(other, text)["rougeL"].fmeasure for other in index._texts]
        score, hit = index.most_similar(text)
        assert (hit is not None) == any(s >= 0.7 for s in brute)
        if hit is not None:
            assert score == pytest.approx(brute[hit]) and score >= 0.7
        else:
            index.add(text)
    assert 0 < index.exact_checks < 150 * len(index) / 2  # the bound skipped most exact scores


def test_generate_cli_end_to_end_and_bad_input(context, run_cli, tmp_path, monkeypatch):
    import dynalign.plugins

    monkeypatch.setattr(dynalign.plugins, "load_registry", lambda: context.registry)
    config = tmp_path / "gen.toml"
    config.write_text(
        'value = "ca"\nseed = 3\n[prompts]\ngenerator = "agents"\n'
        'options = { held_out = 2, progress = false, model = { backend = "fake-agents" } }\n'
    )
    out = tmp_path / "out"
    result = run_cli("prompts", "generate", config, "--n", "8", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "wrote 6 train + 2 held-out prompts" in result.stdout and "rouge_similar" in result.stdout
    assert len((out / "held_out.jsonl").read_text().splitlines()) == 2
    again = run_cli("prompts", "generate", config, "--n", "8", "--out", out)
    assert again.exit_code != 0 and "pass --resume" in again.stderr
    before = FakeAgents.requests
    resumed = run_cli("prompts", "generate", config, "--n", "8", "--out", out, "--resume")
    assert resumed.exit_code == 0 and FakeAgents.requests == before
    other = run_cli("prompts", "generate", config, "--n", "9", "--out", out)
    assert other.exit_code != 0 and "holds a different run" in other.stderr and len(other.stderr.splitlines()) == 1
    assert len((out / "train.jsonl").read_text().splitlines()) == 6  # nothing lost
    zero = run_cli("prompts", "generate", config, "--n", "0", "--out", tmp_path / "zero")
    assert zero.exit_code == 2 and zero.stderr.strip() == "error: --n must be a positive number of prompts, got 0"


def test_through_a_real_openai_compatible_server(context, tmp_path, monkeypatch):
    pytest.importorskip("openai")
    from fakeserver import FakeServer

    monkeypatch.setenv("FAKE_KEY", "test-key")
    with FakeServer(models=("fake-agent",)) as server:
        server.reply = lambda messages, model: fake_reply(messages, 0)
        options = {
            "backend": "openai",
            "options": {
                "model": "fake-agent",
                "base_url": server.openai_url,
                "api_key_env": "FAKE_KEY",
                "concurrency": 4,
            },
        }
        prompts = make(context, model=options, n=6, held_out=1).generate_to(context.value, tmp_path)
        sent = server.count("/chat/completions")
        assert server.max_in_flight > 1  # each wave's requests ran concurrently
        again = make(context, model=options, n=6, held_out=1).generate_to(context.value, tmp_path)
    assert again == prompts and server.count("/chat/completions") == sent
    assert len(prompts.train) == 5
    assert prompts.train[0].generator_models["goal"].startswith("openai:fake-agent")


@pytest.mark.model
def test_smollm2_makes_a_handful_of_prompts(ca_value, tmp_path):
    """The real embedded SmolLM2 (the default backend) plays every role; kept small for CPU.

    A 135M critic cannot judge (its digit probabilities barely depend on the prompt), so
    min_score = 1 only checks the wiring: text critique, then the probability fallback."""
    context = RunContext(value=ca_value, registry=load_registry(), seed=0)
    options = {"n": 3, "held_out": 1, "min_score": 1, "goals_per_call": 1, "tasks_per_goal": 1}
    options.update(max_refinements=0, max_new_tokens=48, progress=False)
    generator = context.build("prompt_generator", "agents", options, "prompts.options")
    prompts = generator.generate_to(ca_value, tmp_path)
    rows = [*prompts.train, *prompts.held_out]
    assert len(rows) == 3 and len({r.prompt for r in rows}) == 3
    assert all(r.generator_models["task"] == "hf:embedded:smollm2-135m-instruct" for r in rows)
    assert all(6 <= len(r.prompt.split()) <= 150 and 1 <= r.critic_score <= 5 for r in rows)
    summary = generator.last_summary
    assert summary["calls"]["critic"] >= 3
    again = context.build("prompt_generator", "agents", options, "prompts.options").generate_to(ca_value, tmp_path)
    assert again == prompts  # replayed from the cache


def test_ids_are_content_hashes(context):
    prompts = make(context).generate_to(context.value, None)
    for record in (*prompts.train, *prompts.held_out):
        assert record.id == hashlib.sha256(record.prompt.encode()).hexdigest()[:12]

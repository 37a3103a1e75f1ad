"""The `hf` backend: tiny random model in fast tests, real SmolLM2 through the conversion cache."""

from __future__ import annotations

import pytest

from dynalign.api import GenerationParams
from dynalign.errors import DynalignError, ModelError
from dynalign_hf.backend import HFChatModel, HFOptions, resolve_model_path


def test_tiny_model_generates_n_samples_per_conversation(tiny_model_dir):
    model = HFChatModel(HFOptions(model=str(tiny_model_dir), batch_size=2))
    conversations = [
        [{"role": "user", "content": f"Say something about {topic}."}] for topic in ("rain", "bread", "maps")
    ]
    answers = model.chat(conversations, GenerationParams(max_new_tokens=5, n=2, seed=0))
    assert [len(a) for a in answers] == [2, 2, 2]
    assert all(isinstance(text, str) for group in answers for text in group)
    again = model.chat(conversations, GenerationParams(max_new_tokens=5, n=2, seed=0))
    assert again == answers  # seeded sampling is reproducible


@pytest.fixture
def generate_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, dict]]:
    """(rows, keyword arguments) of every `generate_shared` call made while the test runs, in order."""
    import dynalign_hf.sampling as sampling

    calls: list[tuple[int, dict]] = []
    original = sampling.generate_shared

    def recording(model, input_ids, attention_mask, **kwargs):
        calls.append((int(input_ids.shape[0]), kwargs))
        return original(model, input_ids, attention_mask, **kwargs)

    monkeypatch.setattr(sampling, "generate_shared", recording)
    return calls


@pytest.mark.parametrize("handle", [False, True])
def test_generation_batches_follow_their_own_size_scoring_keeps_its_own(tiny_model_dir, generate_calls, handle):
    """`generation_batch_size` sets the rows per generate call (backend and policy handle);
    `batch_size` still sets the scoring batches."""
    backend = HFChatModel(HFOptions(model=str(tiny_model_dir), batch_size=1, generation_batch_size=3))
    chat_model = backend.policy_handle() if handle else backend
    conversations = [[{"role": "user", "content": f"Name a {thing}."}] for thing in ("tree", "river", "song", "tool")]
    chat_model.chat(conversations, GenerationParams(max_new_tokens=3, n=2, seed=0))
    assert [rows for rows, _ in generate_calls] == [6, 2]  # 3 conversations x 2 samples, then the fourth
    scored = backend.policy_handle()
    assert scored.batch_size == 1 and scored.generation_batch_size == 3


def test_decode_products_reach_every_sampling_call(tiny_model_dir, generate_calls):
    """The `decode_products` option reaches generate_shared from the backend, the policy handle
    and the trainer's sampling (`shared_prefill`); an unknown way is refused."""
    backend = HFChatModel(HFOptions(model=str(tiny_model_dir), decode_products="weight-first"))
    handle = backend.policy_handle()
    conversations = [[{"role": "user", "content": "Name a tree."}]]
    for chat_model in (backend, handle):
        chat_model.chat(conversations, GenerationParams(max_new_tokens=2, n=2, seed=0))
    model, tokenizer = backend.loaded()
    batch = tokenizer(["Name a tree.", "Name a river."], return_tensors="pt", padding=True)
    with handle.shared_prefill():
        model.generate(**batch, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert [kwargs["products"] for _, kwargs in generate_calls] == ["weight-first"] * 3
    with pytest.raises(ValueError, match="decode_products"):
        HFOptions(model=str(tiny_model_dir), decode_products="fastest")


def test_long_prompts_get_fewer_conversations_per_call_and_the_same_greedy_answers(
    tiny_model_dir, monkeypatch, generate_calls
):
    """A call's key/value cache (rows x positions) stays within GENERATION_CACHE_BYTES: the long
    conversation goes alone, the short ones share a call, and greedy answers do not change."""
    import torch

    import dynalign_hf.textgen as textgen
    from dynalign_hf.prefix import cache_keyword

    backend = HFChatModel(HFOptions(model=str(tiny_model_dir), generation_batch_size=8))
    model, tokenizer = backend.loaded()
    conversations = [[{"role": "user", "content": text}] for text in ("Hi.", "Name a tool.", "word " * 60, "Yes?")]
    greedy = GenerationParams(max_new_tokens=4, temperature=0.0, n=2)
    unlimited = backend.chat(conversations, greedy)
    lengths = [
        len(tokenizer(textgen.render(tokenizer, c), add_special_tokens=False)["input_ids"]) for c in conversations
    ]
    per_position = textgen.cache_bytes_per_position(model)
    with torch.no_grad():  # what a real cache of 5 tokens in one row takes, layer by layer
        output = model(input_ids=torch.ones(1, 5, dtype=torch.long), use_cache=True)
    cache = output[cache_keyword(output)]
    assert per_position * 5 == sum(layer.keys.nbytes + layer.values.nbytes for layer in cache.layers)
    # room for two short conversations' rows, not for the long one beside anything
    budget_positions = 2 * 2 * (max(lengths[0], lengths[1]) + 4)
    assert 2 * (lengths[2] + 4) * 2 > budget_positions
    monkeypatch.setattr(textgen, "GENERATION_CACHE_BYTES", budget_positions * per_position)
    assert backend.chat(conversations, greedy) == unlimited
    # unlimited: all 8 rows in one call; limited: the two short ones, the long one alone, the last
    assert [rows for rows, _ in generate_calls] == [8, 4, 2, 2]


def test_next_token_probs_are_a_distribution_over_choices(tiny_model_dir):
    model = HFChatModel(HFOptions(model=str(tiny_model_dir)))
    probs = model.next_token_probs([[{"role": "user", "content": "Rate it."}]] * 2, list("012345"), "Score: ")
    assert len(probs) == 2 and set(probs[0]) == set("012345")
    assert all(0.0 < p < 1.0 for p in probs[0].values())
    assert probs[0] == pytest.approx(probs[1])


def test_multi_token_choice_is_rejected(tiny_model_dir):
    model = HFChatModel(HFOptions(model=str(tiny_model_dir)))
    with pytest.raises(ModelError, match="must be one"):
        model.next_token_probs([[{"role": "user", "content": "x"}]], ["excellent answer"])


def test_missing_paths_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path("./nowhere/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model_path(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        resolve_model_path("someone/not-downloaded-model")
    with pytest.raises(ModelError, match="unknown embedded model"):
        resolve_model_path("embedded:gpt-9")


@pytest.mark.model
def test_smollm2_converted_once_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNALIGN_CACHE_DIR", str(tmp_path))
    folder = resolve_model_path("embedded:smollm2-135m-instruct")
    assert (tmp_path / "models").exists() and folder.startswith(str(tmp_path))
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert not getattr(loaded, "is_quantized", False)  # trainable plain fp32 weights
    model = HFChatModel(HFOptions(model=folder))
    [[answer]] = model.chat(
        [[{"role": "user", "content": "What is the capital of France?"}]],
        GenerationParams(max_new_tokens=12, temperature=0.0),
    )
    assert "Paris" in answer
    assert resolve_model_path("embedded:smollm2-135m-instruct") == folder  # cached: no second conversion


def test_a_released_policy_handle_holds_no_model_and_says_so(tiny_model_dir):
    handle = HFChatModel(HFOptions(model=str(tiny_model_dir))).policy_handle()
    conversation = [{"role": "user", "content": "Hi"}]
    assert len(handle.completion_logprobs([conversation], ["Hello."], reference=True)[0]) > 0
    handle.release()
    assert handle.model is None and handle.reference is None
    with pytest.raises(DynalignError, match="released after training"):
        handle.completion_logprobs([conversation], ["Hello."], reference=True)

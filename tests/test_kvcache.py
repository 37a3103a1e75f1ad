"""The in-place key/value cache (`dynalign_hf.kvcache`) samples exactly what `generate` samples."""

from __future__ import annotations

from typing import Any

import pytest
import torch

SYSTEM = "You value knowledge, power, vitality and benevolence for everyone. " * 4
PROMPTS = ["How do I start a garden?", "Explain tides to a child in two sentences, please, with care."]


def batch(tokenizer: Any, repeats: int) -> tuple[Any, Any]:
    from dynalign_hf.textgen import _left_padded, render

    texts = [
        render(tokenizer, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]) for p in PROMPTS
    ]
    encoded = _left_padded(tokenizer, texts, "cpu")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    assert (mask == 0).any(), "the prompts must differ in length, so left padding is exercised"
    return ids.repeat_interleave(repeats, 0), mask.repeat_interleave(repeats, 0)


def sample(model: Any, ids: Any, mask: Any, tokens: int, **options: Any) -> Any:
    """Sampled rows for seed 7: by `generate_shared`, or (`plain=True`) by the model's own
    `generate` with the same loop and draw (`dynalign_hf.decoding`)."""
    from dynalign_hf.decoding import sample_loop
    from dynalign_hf.sampling import generate_shared

    settings = {
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,
        "do_sample": True,
        "temperature": 1.0,
        "top_k": None,
    }
    torch.manual_seed(7)
    with torch.no_grad():
        if options.pop("plain", False):
            return model.generate(input_ids=ids, attention_mask=mask, custom_generate=sample_loop, **settings)
        return generate_shared(model, ids, mask, **settings, **options)


@pytest.mark.parametrize("repeats", [1, 3])
def test_sampling_with_the_grown_cache_equals_plain_generate(tiny_model_dir, repeats):
    """Same seed, same tokens: distinct prompts (repeats 1) and groups sharing a prompt."""
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = batch(tokenizer, repeats)
    plain = sample(model, ids, mask, 12, plain=True)
    assert torch.equal(sample(model, ids, mask, 12), plain)
    assert torch.equal(sample(model, ids, mask, 12, preallocate_cache=False), plain)


@pytest.fixture
def regrown(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes every `PreallocatedLayer` (re)allocated its buffers for, in order."""
    import dynalign_hf.kvcache as kvcache

    sizes: list[int] = []
    original = kvcache.PreallocatedLayer._regrow

    def counting(self: Any, *args: Any) -> None:
        sizes.append(args[-1])
        original(self, *args)

    monkeypatch.setattr(kvcache.PreallocatedLayer, "_regrow", counting)
    return sizes


def test_a_full_buffer_is_regrown_and_sampling_stays_exact(tiny_model_dir, monkeypatch, regrown):
    """A reserve smaller than the answer forces reallocations mid-answer; tokens stay the same."""
    import dynalign_hf.kvcache as kvcache
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = batch(tokenizer, 2)
    plain = sample(model, ids, mask, 10, plain=True)
    monkeypatch.setattr(kvcache, "preallocate", _with_reserve(kvcache.preallocate, 3))
    assert torch.equal(sample(model, ids, mask, 10), plain)
    layers = model.config.num_hidden_layers
    assert len(regrown) > layers, "a reserve of 3 positions must run out during a 10-token answer"


def test_the_reserve_comes_from_the_generation_config_as_trl_passes_it(tiny_model_dir, regrown):
    """TRL gives `max_new_tokens` inside a GenerationConfig: each layer allocates once, never again."""
    from transformers import GenerationConfig

    from dynalign_hf.backend import load_model
    from dynalign_hf.sampling import generate_shared

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = batch(tokenizer, 2)
    config = GenerationConfig(max_new_tokens=9, min_new_tokens=9, do_sample=True, top_k=None)
    with torch.no_grad():
        output = generate_shared(model, ids, mask, generation_config=config)
    assert output.shape[1] == ids.shape[1] + 9
    assert len(regrown) == model.config.num_hidden_layers  # the first allocation of each layer only


def _with_reserve(preallocate: Any, reserve: int) -> Any:
    def small(cache: Any, _: int) -> Any:
        return preallocate(cache, reserve)

    return small


def test_each_layer_writes_new_tokens_into_its_buffer(tiny_model_dir):
    """After the first decode step no layer allocates again: keys stay views of one buffer."""
    from dynalign_hf.backend import load_model
    from dynalign_hf.kvcache import PreallocatedLayer, preallocate
    from dynalign_hf.prefix import cache_keyword

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = batch(tokenizer, 1)
    with torch.no_grad():
        output = model(input_ids=ids, attention_mask=mask, use_cache=True)
        keyword = cache_keyword(output)
        cache = output[keyword]
        layers = preallocate(cache, 4).layers
        assert all(isinstance(layer, PreallocatedLayer) for layer in layers)
        buffers = [layer._buffers[0].data_ptr() for layer in layers]
        width = ids.shape[1]
        for step in range(4):
            token = torch.zeros(ids.shape[0], 1, dtype=torch.long)
            attention = torch.ones(ids.shape[0], width + step + 1, dtype=torch.long)
            model(input_ids=token, attention_mask=attention, use_cache=True, **{keyword: cache})
    assert [layer._buffers[0].data_ptr() for layer in layers] == buffers
    assert all(layer.get_seq_length() == width + 4 for layer in layers)
    assert all(layer.keys.data_ptr() == layer._buffers[0].data_ptr() for layer in layers)


@pytest.mark.model
def test_grown_cache_samples_what_generate_samples_on_smollm2():
    """The demo's sampling (SmolLM2, a LoRA adapter, temperature 1): identical tokens. The
    adapter is non-zero, as after training, so its merged sampling (`dynalign_hf.merged`) is
    tested too."""
    from dynalign_hf.backend import load_model, resolve_model_path
    from dynalign_hf.testing import trained_looking_lora

    model, tokenizer = load_model(resolve_model_path("embedded:smollm2-135m-instruct"))
    model = trained_looking_lora(model)
    model.eval()
    ids, mask = batch(tokenizer, 2)
    assert torch.equal(sample(model, ids, mask, 24), sample(model, ids, mask, 24, plain=True))

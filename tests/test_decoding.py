"""Sampling's loop and draw (`dynalign_hf.decoding`): the draw follows the distribution it is
given, and the loop is transformers' own but for the draw."""

from __future__ import annotations

from typing import Any

import pytest
import torch

PROMPTS = ["How do I start a garden?", "Explain tides to a child in two sentences, please, with care."]


def test_the_race_draws_each_index_with_its_probability():
    from dynalign_hf.decoding import race_draw

    probs = torch.tensor([0.0, 0.5, 0.0, 0.2, 0.25, 0.05, 0.0])
    torch.manual_seed(0)
    draws = race_draw(probs.expand(40_000, -1).contiguous())
    counts = torch.bincount(draws, minlength=len(probs)).double()
    expected = probs.double() * len(draws)
    assert counts[probs == 0].sum() == 0  # an entry without mass is never drawn
    sigma = (expected * (1 - probs.double())).sqrt()
    assert ((counts - expected).abs() <= 5 * sigma).all(), (counts, expected)


def test_the_race_scales_unnormalized_rows():
    """Rows whose entries do not sum to 1 (as a float32 softmax's rarely do exactly) are drawn in proportion."""
    from dynalign_hf.decoding import race_draw

    torch.manual_seed(1)
    draws = race_draw(torch.tensor([[3.0, 1.0]]).expand(20_000, -1).contiguous())
    assert abs(draws.double().mean().item() - 0.25) < 0.02


@pytest.mark.parametrize("variate", [0.0, 1.0 - 2.0**-24], ids=["bottom", "top"])
def test_uniforms_at_either_end_still_draw_an_index_with_mass(monkeypatch, variate):
    """Every variate equal: the largest entry wins; at U = 0 it still does (E stays finite)."""
    from dynalign_hf.decoding import race_draw

    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.full(shape, variate, dtype=kw.get("dtype")))
    probs = torch.tensor([[0.0, 0.3, 0.7, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0]])
    assert race_draw(probs).tolist() == [2, 3]


def test_float_rounding_in_the_logits_seldom_changes_the_drawn_token():
    """The same seed on logits that differ by 1e-4 (what merged weights or a shared prefill
    change): the race keeps its tokens. Inverting each row's cumulative distribution instead
    moved about 4% of them (22 of 500 rows in the same setting), since every entry's rounding
    shifts all the boundaries after it."""
    from dynalign_hf.decoding import race_draw

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 49152, generator=generator) * 3
    nudged = logits + torch.randn(logits.shape, generator=generator) * 1e-4
    torch.manual_seed(5)
    drawn = race_draw(torch.softmax(logits, dim=-1))
    torch.manual_seed(5)
    again = race_draw(torch.softmax(nudged, dim=-1))
    assert (drawn != again).sum() <= 1


@pytest.mark.parametrize(
    "row", [[0.5, float("nan")], [0.5, float("inf")], [1.2, -0.2], [0.0, 0.0]], ids=["nan", "inf", "negative", "empty"]
)
def test_an_invalid_row_raises_as_multinomial_does(row):
    from dynalign_hf.decoding import race_draw

    with pytest.raises(RuntimeError, match="probability tensor"):
        race_draw(torch.tensor([row]))


def _batch(tokenizer: Any) -> tuple[Any, Any]:
    from dynalign_hf.textgen import _left_padded, render

    texts = [render(tokenizer, [{"role": "user", "content": p}]) for p in PROMPTS]
    encoded = _left_padded(tokenizer, texts, "cpu")
    return encoded["input_ids"].repeat_interleave(2, 0), encoded["attention_mask"].repeat_interleave(2, 0)


def _settings(tokenizer: Any) -> dict[str, Any]:
    """Sampling with every kind of processor and rows that finish at different lengths (a third
    of the vocabulary ends a row), so the end-of-sequence padding is exercised."""
    return {
        "max_new_tokens": 12,
        "do_sample": True,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "eos_token_id": list(range(3, tokenizer.vocab_size, 3)),
        "pad_token_id": tokenizer.pad_token_id,
    }


def _sampled(model: Any, ids: Any, mask: Any, settings: dict[str, Any], **options: Any) -> Any:
    torch.manual_seed(11)
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, **settings, **options)


def test_the_loop_with_torchs_draw_samples_what_transformers_loop_samples(tiny_model_dir, monkeypatch):
    import dynalign_hf.decoding as decoding
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = _batch(tokenizer)
    settings = _settings(tokenizer)
    plain = _sampled(model, ids, mask, settings)
    finished = (plain[:, ids.shape[1] :] == tokenizer.pad_token_id).any(dim=1)
    assert finished.any() and not finished.all(), "rows must end at different lengths"
    monkeypatch.setattr(decoding, "draw", lambda probs: torch.multinomial(probs, num_samples=1).squeeze(1))
    assert torch.equal(_sampled(model, ids, mask, settings, custom_generate=decoding.sample_loop), plain)


def test_shared_sampling_draws_through_the_loop(tiny_model_dir, monkeypatch):
    """`generate_shared` samples with the loop's draw, once per new token, and its shared prefill
    gives the tokens the loop gives on the plain prompts; greedy decoding, beam search and beam
    sampling run transformers' own loops."""
    import dynalign_hf.decoding as decoding
    from dynalign_hf.backend import load_model
    from dynalign_hf.sampling import generate_shared

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = _batch(tokenizer)
    settings = {**_settings(tokenizer), "eos_token_id": tokenizer.eos_token_id, "min_new_tokens": 12}
    reference = _sampled(model, ids, mask, settings, custom_generate=decoding.sample_loop)
    calls: list[int] = []
    monkeypatch.setattr(decoding, "draw", lambda probs: calls.append(len(probs)) or decoding.race_draw(probs))
    torch.manual_seed(11)
    with torch.no_grad():
        shared = generate_shared(model, ids, mask, **settings)
    assert torch.equal(shared, reference)
    assert calls == [len(ids)] * 12
    calls.clear()
    for other in ({"do_sample": False}, {"do_sample": False, "num_beams": 2}, {"do_sample": True, "num_beams": 2}):
        settings = {"max_new_tokens": 6, "pad_token_id": tokenizer.pad_token_id, **other}  # keep their own loops
        with torch.no_grad():
            torch.manual_seed(11)
            assert torch.equal(generate_shared(model, ids, mask, **settings), _sampled(model, ids, mask, settings))
    assert calls == []

"""Judge prompts for several answers to one request share that request: it runs once
(`dynalign_hf.prefix.split_at_siblings`), the probabilities stay the plain computation's."""

from __future__ import annotations

from typing import Any

import torch

RUBRIC = "Judge how well the answer advances knowledge, power, vitality and benevolence. " * 4
REQUESTS = [
    "Write a plan for a community garden that feeds the neighbourhood and teaches children to grow food.",
    "Explain to a new volunteer how the town's flood warnings work and what each of the three levels asks of them.",
]
ANSWERS = ["Start small.", "Ask the neighbours first, then choose a sunny plot together.", "No."]


def test_each_list_is_cut_where_it_stops_sharing_with_another():
    from dynalign_hf.prefix import split_at_siblings

    everyone = [1] * 20
    a = everyone + [2] * 20 + [3, 4]
    b = everyone + [2] * 20 + [5]
    near = everyone + [2] * 10 + [6]  # 10 tokens past what all share: too few to cut at
    alone = everyone + [7, 8, 9]
    same = everyone + [9] * 30
    contexts, rests = split_at_siblings([a, near, b, alone, same, same], least=16)
    assert contexts[0] == contexts[2] == a[:40] and rests[0] == [3, 4] and rests[2] == [5]
    assert (contexts[1], rests[1]) == (near, []) and (contexts[3], rests[3]) == (alone, [])
    assert contexts[4] == contexts[5] == same[:-1] and rests[4] == rests[5] == [9]
    assert split_at_siblings([a, b], least=21) == ([a, b], [[], []])


def judged(tokenizer: Any) -> list[str]:
    from dynalign_hf.textgen import render

    return [
        render(tokenizer, [{"role": "system", "content": RUBRIC}, {"role": "user", "content": f"{r}\n\n{a}"}])
        + "Score: "
        for r in REQUESTS
        for a in ANSWERS
    ]


def test_the_request_runs_once_and_the_probabilities_stay_exact(tiny_model_dir, monkeypatch):
    from dynalign_hf.backend import load_model
    from dynalign_hf.prefix import common_prefix_length, split_at_siblings
    from dynalign_hf.textgen import next_token_probs

    model, tokenizer = load_model(str(tiny_model_dir))
    texts = judged(tokenizer)
    token_lists = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    contexts, rests = split_at_siblings(token_lists)
    distinct = list(dict.fromkeys(tuple(c) for c in contexts))
    assert all(rests) and len(distinct) == len(REQUESTS)  # one context per request
    ran: list[tuple[int, int, int]] = []  # per pass: rows, tokens run, positions given to the output layer
    forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        output = forward(*args, **kwargs)
        ids = kwargs["input_ids"]
        tokens = int(kwargs["attention_mask"][:, -ids.shape[1] :].sum()) if "attention_mask" in kwargs else ids.numel()
        ran.append((ids.shape[0], tokens, output.logits.shape[1]))
        return output

    monkeypatch.setattr(model, "forward", counting)
    shared = next_token_probs(model, tokenizer, texts, list("012345"), batch_size=8)
    monkeypatch.undo()
    everyone = common_prefix_length(distinct)
    # the rubric once, each request once (but its last token), each answer's own tokens
    once = everyone + sum(len(c) - everyone - 1 for c in distinct) + sum(len(r) + 1 for r in rests)
    assert sum(tokens for _, tokens, _ in ran) == once < everyone + sum(len(t) - everyone for t in token_lists)
    assert all(positions <= rows for rows, _, positions in ran)  # the output layer on each row's last position
    ids = [tokenizer.encode(c, add_special_tokens=False)[0] for c in "012345"]
    with torch.no_grad():
        for tokens, got in zip(token_lists, shared):
            logits = model(input_ids=torch.tensor([tokens])).logits
            want = torch.softmax(logits[0, -1].float(), dim=-1)[ids]
            torch.testing.assert_close(torch.tensor([got[c] for c in "012345"]), want, atol=1e-5, rtol=0)

"""`dynalign prompts stats`: pairwise ROUGE-L and length histograms, JSON numbers, summary."""

from __future__ import annotations

import json

import pytest

from dynalign_agents.stats import compute_stats

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [
    {"id": "a", "prompt": "how do I plan a community garden with my neighbors", "pillar": "Power"},
    {"id": "b", "prompt": "how do I plan a community garden with my neighbours", "pillar": "Power"},
    {"id": "c", "prompt": "my father has diabetes and refuses to see a doctor what should I do", "pillar": "Vitality"},
    {"id": "d", "prompt": "is this news story about vaccines reliable", "pillar": "Knowledge"},
]


def test_stats_cli_writes_plots_json_and_summary(run_cli, tmp_path):
    _write(tmp_path, "train.jsonl", ROWS[:3])
    _write(tmp_path, "held_out.jsonl", ROWS[3:])
    result = run_cli("prompts", "stats", tmp_path)
    assert result.exit_code == 0, result.stderr
    for name in ("rouge_l.png", "length.png"):
        assert (tmp_path / "stats" / name).read_bytes()[:8] == PNG_MAGIC
    stats = json.loads((tmp_path / "stats" / "stats.json").read_text())
    assert stats["count"] == 4 and stats["splits"] == {"train": 3, "held_out": 1}
    assert stats["pairs_scored"] == 6 and not stats["pairs_sampled"]
    # a/b differ in one of 10 tokens: LCS 9 -> F = 0.9; the other five pairs are far below 0.7
    assert stats["rouge_l"]["max"] == pytest.approx(0.9)
    assert stats["rouge_l"]["share_at_or_above_0.7"] == pytest.approx(1 / 6, abs=1e-4)
    assert sum(stats["rouge_l"]["histogram"]["counts"]) == 6
    assert stats["length_words"]["q0"] == 7 and stats["length_words"]["q100"] == 14
    assert stats["pillars"] == {"Knowledge": 1, "Power": 2, "Vitality": 1}
    assert "prompts: 4 (train 3, held_out 1)" in result.stdout
    assert "share >= 0.7: 16.67%" in result.stdout and "pillars: Knowledge 1, Power 2, Vitality 1" in result.stdout


def test_stats_reads_a_run_directory_and_custom_out(run_cli, tmp_path):
    _write(tmp_path / "run" / "prompts", "train.jsonl", ROWS)
    result = run_cli("prompts", "stats", tmp_path / "run", "--out", tmp_path / "figs", "--threshold", "0.95")
    assert result.exit_code == 0, result.stderr
    stats = json.loads((tmp_path / "figs" / "stats.json").read_text())
    assert stats["count"] == 4 and stats["rouge_l"]["share_at_or_above_0.95"] == 0.0


def test_pairs_are_sampled_beyond_max_pairs():
    rows = [{"prompt": f"prompt number {i} about topic {i % 7} and place {i % 5}"} for i in range(40)]
    stats, sims, lengths = compute_stats(rows, max_pairs=100)
    assert stats["pairs_scored"] == len(sims) == 100 and stats["pairs_sampled"]
    assert len(lengths) == 40 and stats["pillars"] == {"none": 40}
    again, sims_again, _ = compute_stats(rows, max_pairs=100)
    assert sims == sims_again  # seeded


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "holds no prompts"),
    ],
)
def test_stats_bad_input_is_one_line(run_cli, tmp_path, setup, message):
    target = tmp_path / "nothing"
    setup(target)
    result = run_cli("prompts", "stats", target)
    assert result.exit_code != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1

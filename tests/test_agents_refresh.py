"""The `agents` generator's per-round refresh: weak pillars get more of the new goals."""

from __future__ import annotations

from collections import Counter

from test_agents_pipeline import context, make  # noqa: F401  (fixture and builder)


def test_refresh_weights_goals_toward_weak_pillars(context, tmp_path):  # noqa: F811
    context.run_dir = tmp_path
    generator = make(context, n=16, held_out=2)
    initial = generator.generate(context.value)
    weakness = {"Knowledge": 0.0, "Power": 0.0, "Vitality": 0.0, "Benevolence": 1.0}
    fresh = generator.refresh(context.value, initial.train, weakness, round_index=1)
    assert len(fresh) >= len(initial.train) and (tmp_path / "prompt_generation" / "round-1").exists()
    by_pillar = Counter(p.pillar for p in fresh)
    assert by_pillar["Benevolence"] == max(by_pillar.values())
    assert by_pillar["Benevolence"] > Counter(p.pillar for p in initial.train)["Benevolence"]

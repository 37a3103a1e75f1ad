"""The Collective Agency value package, checked with the plugin-author kit."""

from __future__ import annotations

from dynalign.testing import check_value_spec
from dynalign_value_ca import collective_agency


def test_ca_meets_the_value_contract():
    check_value_spec(collective_agency())


def test_ca_has_four_inseparable_pillars_and_a_0_to_5_rubric():
    spec = collective_agency()
    assert spec.pillar_names == ["Knowledge", "Power", "Vitality", "Benevolence"]
    assert (spec.score_min, spec.score_max) == (0, 5)
    assert "inseparable" in spec.definition.lower()
    assert {pair.pillar for pair in spec.calibration} == set(spec.pillar_names)
    assert {p.pillar for p in spec.prompts} == set(spec.pillar_names)


def test_ca_is_registered_with_its_alias(dynalign_registry):
    assert dynalign_registry.get("value", "ca").obj == collective_agency()


def test_ca_labeled_pairs_are_hard_length_matched_and_split():
    spec = collective_agency()
    pairs = [*spec.calibration, *spec.held_out]
    assert len(pairs) >= 48
    for pillar in spec.pillar_names:
        assert sum(p.pillar == pillar for p in pairs) >= 12
        assert any(p.pillar == pillar for p in spec.held_out) and any(p.pillar == pillar for p in spec.calibration)
    for pair in pairs:
        longer, shorter = sorted((len(pair.better), len(pair.worse)), reverse=True)
        assert longer / shorter <= 1.2, pair.prompt
        assert pair.kind in {"generic", "one-pillar", "preachy", "inaccurate", "harms-absent"}, pair.prompt
    # a signal that merely prefers longer answers must not pass: about half the better answers are shorter
    assert 0.4 <= sum(len(p.better) < len(p.worse) for p in pairs) / len(pairs) <= 0.6
    assert not {p.prompt for p in spec.calibration} & {p.prompt for p in spec.held_out}
    assert not {p.prompt for p in pairs} & {p.prompt for p in spec.prompts}

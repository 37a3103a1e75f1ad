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

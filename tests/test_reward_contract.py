"""The rewarder contract (`dynalign.rewards`) as `dynalign.testing.check_rewarder` checks it."""

from __future__ import annotations

import pytest

from dynalign.api import Rewarder
from dynalign.testing import check_rewarder

ASK = [[{"role": "user", "content": "Say hi."}]] * 2
ANSWERS = [[{"role": "assistant", "content": "Hello."}], [{"role": "assistant", "content": "Hi there, friend."}]]


def rewarder_returning(scores, metrics=None) -> Rewarder:
    class Fixed(Rewarder):
        """Returns what the test gives it."""

        name = "fixed"

        def __call__(self, prompts, completions, **columns):
            return scores

        def pop_metrics(self):
            return dict(metrics or {})

    return Fixed()


def test_numbers_and_none_pass_as_floats():
    assert check_rewarder(rewarder_returning([1, None], {"unscorable_rate": 0.5}), ASK, ANSWERS) == [1.0, None]


@pytest.mark.parametrize(
    ("scores", "metrics", "expected"),
    [
        ("5", {}, "returned '5' (str)"),
        ([1.0], {}, "one per completion; it returned 1"),
        ([1.0, "high"], {}, "score 1 is 'high' (str)"),
        ([1.0, True], {}, "score 1 is True (bool)"),
        ([1.0, 2.0], {"fixed/unscorable_rate": 0.0}, "'fixed/unscorable_rate' carries the rewarder's name"),
        ([1.0, 2.0], {"mean": 1.5}, "key 'mean' is reserved"),
        ([1.0, 2.0], {"rate": "high"}, "'rate' is 'high' (str), not a number"),
    ],
)
def test_contract_breaches_fail_the_check_naming_what_to_fix(scores, metrics, expected):
    with pytest.raises(AssertionError, match="rewarder 'fixed'") as raised:
        check_rewarder(rewarder_returning(scores, metrics), ASK, ANSWERS)
    assert expected in str(raised.value)

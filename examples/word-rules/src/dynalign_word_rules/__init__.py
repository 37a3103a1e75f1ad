"""Example dynalign plugin: `word-rules`, a rule-based rewarder.

It needs no model, so it is the quickest way to check that an optimizer learns: a policy
trained against it should raise its mean reward within a few dozen steps.
"""

from dynalign import hookimpl
from dynalign_word_rules.rewarder import WordRulesRewarder


@hookimpl
def register_rewarders(register):
    """Register the `word-rules` rewarder."""
    register(WordRulesRewarder)

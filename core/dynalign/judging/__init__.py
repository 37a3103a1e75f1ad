"""Judging, in one place for every judge path (the `judge` and `negotiation` rewarders,
self-reward's verdicts, `dynalign score`, the judge-check, the eval, the prompt agents):

- `prompts`: the judge prompts (the value's rubric, fenced untrusted text, candidates grouped
  by prompt);
- `inert`: making untrusted text inert before a judge reads it;
- `verdicts`: parsing verdicts, expected scores, K samples averaged, both orders combined;
- `asking`: asking a judge model for scores, preferences and refusals (probabilities or a reply);
- `calibration`: measuring a signal on a value's labeled pairs;
- `cache` and `budget`: the call cache and the failure budget.

Plugins use these through `dynalign.api`.
"""

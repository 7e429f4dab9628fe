"""Forgetting measured on paired probe outcomes: regressions, gains and McNemar's test.

Baseline and tuned answer the same probes, so each probe is a pair of outcomes. Only the
discordant pairs say anything about a difference: b probes the baseline got right and
the tune lost (regressions), c the other way (gains). Under "the tune neither forgets
nor learns" each discordant probe is a fair coin, so McNemar's exact test is the
two-sided binomial test of b successes in b + c trials at p = 0.5.

The p-value is reported beside the count; it does not decide the gate (the gate's rule
is `allowed_regressions`, strict at 0 by default). A small p with b > c says the tune
lost more than chance explains; a large p with b > 0 says the losses could be the same
noise as the gains (a 135M model's greedy answers flip both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Forgetting:
    regressions: int  # b: baseline right, tuned wrong
    gains: int  # c: baseline wrong, tuned right
    baseline_right: int  # probes the baseline answers right (what the tune can lose)
    probes: int
    mcnemar_p: float  # exact two-sided; 1.0 when there is no discordant probe

    @property
    def regression_rate(self) -> float | None:
        """Share of the baseline's right answers the tune lost (None: it had none)."""
        return self.regressions / self.baseline_right if self.baseline_right else None

    def as_report(self) -> dict[str, float | int | None]:
        return {
            "regressions": self.regressions,
            "gains": self.gains,
            "baseline_right": self.baseline_right,
            "regression_rate": self.regression_rate,
            "mcnemar_p": self.mcnemar_p,
        }


def mcnemar_exact(regressions: int, gains: int) -> float:
    """Exact two-sided McNemar p-value for b regressions and c gains."""
    if regressions < 0 or gains < 0:
        raise ValueError(f"counts must be >= 0, got b={regressions}, c={gains}")
    if regressions + gains == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(regressions, regressions + gains, 0.5).pvalue)


def compare_probes(baseline: Sequence[bool], tuned: Sequence[bool]) -> Forgetting:
    """Paired outcomes (probe i: baseline[i], tuned[i]) -> regressions, gains, p-value."""
    if len(baseline) != len(tuned):
        raise ValueError(f"{len(baseline)} baseline outcomes but {len(tuned)} tuned ones")
    b = sum(1 for before, after in zip(baseline, tuned) if before and not after)
    c = sum(1 for before, after in zip(baseline, tuned) if after and not before)
    return Forgetting(
        regressions=b,
        gains=c,
        baseline_right=sum(1 for before in baseline if before),
        probes=len(baseline),
        mcnemar_p=mcnemar_exact(b, c),
    )

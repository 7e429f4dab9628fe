"""The ship gate: a tune ships only if it honestly beats the cheaper rungs of the ladder.

Before training, `cheapest_sufficient_rung` may stop the climb: a cheaper rung that
reaches the recipe's target is used and nothing is trained. After training, SHIP
requires all of: the tuned model beats the best cheaper rung (zero-shot, few-shot or
retrieval base model) on the primary metric by at least the recipe's margin; the
paired-bootstrap interval of that difference lies above zero; and no more
forgetting-probe regressions than the recipe allows. Overfitting is flagged, and
blocks only when the recipe says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.lib.forgetting import Forgetting
from pipelines.lib.metrics import Interval
from pipelines.recipe import GateSection

# The rungs below fine-tuning, cheapest first (a prompt, then examples, then a corpus).
CHEAPER_RUNGS = ("baseline", "few_shot", "retrieval")


@dataclass(frozen=True)
class Verdict:
    ship: bool
    reasons: list[str] = field(default_factory=list)  # each "PASS ...", "FAIL ..." or "WARN ..."

    @property
    def label(self) -> str:
        return "SHIP" if self.ship else "NO-SHIP"


def best_cheaper_rung(scores: dict[str, float]) -> str:
    """The cheaper candidate with the highest primary metric (ties: the cheapest)."""
    present = [name for name in CHEAPER_RUNGS if name in scores]
    return max(present, key=lambda name: (scores[name], -CHEAPER_RUNGS.index(name)))


def cheapest_sufficient_rung(
    metric: str, scores: dict[str, float], target: float | None
) -> tuple[str | None, str]:
    """The cheapest rung whose primary metric reaches `target` (None: keep climbing), and
    the sentence that says so, e.g. 'USE few_shot: field_f1 0.9300 >= target 0.90'."""
    present = [name for name in CHEAPER_RUNGS if name in scores]
    if target is None:
        return None, "no eval.target: the tune is trained and judged by the gate"
    for name in present:
        if scores[name] >= target:
            return name, f"USE {name}: {metric} {scores[name]:.4f} >= target {target:.2f}"
    best = best_cheaper_rung(scores)
    return None, (
        f"TRAIN: no cheaper rung reaches {metric} >= {target:.2f} (best: {best} {scores[best]:.4f})"
    )


REGRESSIONS_LISTED = 10  # probe ids named in the reason; the report lists them all


def _listed(regressions: list[str]) -> str:
    if not regressions:
        return ""
    more = len(regressions) - REGRESSIONS_LISTED
    return (
        ": "
        + ", ".join(regressions[:REGRESSIONS_LISTED])
        + (f" and {more} more" if more > 0 else "")
    )


def _forgetting_detail(forgetting: Forgetting | None) -> str:
    """'; 2 lost vs 5 gained of 120 the baseline got right (rate 1.7%), McNemar exact p = 0.45'"""
    if forgetting is None:
        return ""
    rate = forgetting.regression_rate
    return (
        f"; {forgetting.regressions} lost vs {forgetting.gains} gained of "
        f"{forgetting.baseline_right} the baseline got right"
        + (f" (rate {rate:.1%})" if rate is not None else "")
        + f", McNemar exact p = {forgetting.mcnemar_p:.3g}"
    )


def decide(
    gate: GateSection,
    metric: str,
    scores: dict[str, float],
    interval: Interval,
    regressions: list[str],
    overfit_gap: float | None,
    forgetting: Forgetting | None = None,
) -> Verdict:
    """Apply the gate to the primary metric of each candidate (higher is better).
    `forgetting` (the paired probe comparison) only adds its McNemar p-value to the
    regressions reason; the verdict counts regressions against `allowed_regressions`."""
    rung = best_cheaper_rung(scores)
    margin = scores["tuned"] - scores[rung]
    checks = [
        (
            margin >= gate.min_margin and margin > 0,
            f"margin: tuned {metric} {scores['tuned']:.4f} vs {rung} {scores[rung]:.4f} "
            f"= {margin:+.4f} (needs > 0 and >= {gate.min_margin})",
        ),
        (
            interval.low > 0,
            f"interval: tuned - {rung} in [{interval.low:+.4f}, {interval.high:+.4f}] "
            "(lower bound must be above 0)",
        ),
        (
            len(regressions) <= gate.allowed_regressions,
            f"regressions: {len(regressions)} forgetting probes lost "
            f"(allowed {gate.allowed_regressions})"
            + _forgetting_detail(forgetting)
            + _listed(regressions),
        ),
    ]
    reasons = [("PASS " if ok else "FAIL ") + text for ok, text in checks]
    ship = all(ok for ok, _ in checks)
    if overfit_gap is not None:
        overfit = overfit_gap > gate.max_overfit_gap
        word = ("FAIL " if gate.block_on_overfit else "WARN ") if overfit else "PASS "
        reasons.append(
            f"{word}overfitting: train-sample minus held-out {metric} = "
            f"{overfit_gap:+.4f} (flagged above {gate.max_overfit_gap})"
        )
        ship = ship and not (overfit and gate.block_on_overfit)
    return Verdict(ship=ship, reasons=reasons)

"""The ship gate: a tune ships only if it honestly beats the cheaper rungs of the ladder.

SHIP requires all of: the tuned model beats the best cheaper rung (zero-shot or
few-shot base model) on the primary metric by at least the recipe's margin; the
paired-bootstrap interval of that difference lies above zero; and no more
forgetting-probe regressions than the recipe allows. Overfitting is flagged, and
blocks only when the recipe says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.lib.metrics import Interval
from pipelines.recipe import GateSection

CHEAPER_RUNGS = ("baseline", "few_shot")


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


def decide(
    gate: GateSection,
    metric: str,
    scores: dict[str, float],
    interval: Interval,
    regressions: list[str],
    overfit_gap: float | None,
) -> Verdict:
    """Apply the gate to the primary metric of each candidate (higher is better)."""
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
            + (f": {', '.join(regressions)}" if regressions else ""),
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

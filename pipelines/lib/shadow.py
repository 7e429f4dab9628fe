"""Shadow traffic: a challenger's answers to copies of live requests, beside the live ones.

`rung serve --shadow champion=challenger` logs each copy under the challenger's name with
`shadow_of: champion` and the live request's id (pipelines/worker/serve.py). Here the two
logs are joined by request id, and `rung monitor` reports the pairs next to the drift
tests: how often the challenger says the same thing, and the output validity, length and
latency of each side, so a promotion can be judged on real traffic and not only on the
held-out set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

from pipelines.lib.traffic import shadow_copies

EXAMPLES = 3  # disagreements shown in the report


def shadow_pairs(
    traffic_dir: Path, live: str, live_rows: Sequence[dict[str, Any]]
) -> tuple[str | None, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """(the shadow model's name, [(live record, shadow record)]) for these live rows: the
    copies logged with `shadow_of == live`, matched by request id."""
    by_id = {row["request_id"]: row for row in live_rows}
    pairs = [(by_id[c["request_id"]], c) for c in shadow_copies(traffic_dir, live)
             if c.get("request_id") in by_id]  # fmt: skip
    return (pairs[-1][1]["model"] if pairs else None), pairs


def compare_shadow(
    shadow: str, pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], valid: Any
) -> dict[str, Any]:
    """Agreement, and per side the validity rate (`valid(text) -> bool`) and output length.
    Latencies are left out: a copy waits for an idle moment, which its own latency omits."""

    def side(records: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "valid_rate": mean(bool(valid(str(r["output"]))) for r in records),
            "mean_output_chars": mean(len(str(r["output"])) for r in records),
        }

    differ = [(a, b) for a, b in pairs if a["output"].strip() != b["output"].strip()]
    return {
        "shadow": shadow,
        "shadow_versions": sorted({str(b.get("version")) for _, b in pairs}),
        "pairs": len(pairs),
        "agreement": 1 - len(differ) / len(pairs),
        "live": side([a for a, _ in pairs]),
        "challenger": side([b for _, b in pairs]),
        "disagreements": [
            {"request_id": a["request_id"], "live": a["output"], "shadow": b["output"]}
            for a, b in differ[:EXAMPLES]
        ],
    }


def format_shadow(summary: dict[str, Any], live: str) -> list[str]:
    versions = [v for v in summary.get("shadow_versions", []) if v != "None"]
    named = summary["shadow"] + (f" (version {', '.join(versions)})" if versions else "")
    width = max(len(live), len(summary["shadow"])) + 2
    lines = [
        f"shadow: {named} answered copies of {summary['pairs']} of these requests; "
        f"same answer as {live} in {summary['agreement']:.1%}",
        f"  {'':<{width}}{'valid':>8}{'chars':>8}",
    ]
    for name, values in ((live, summary["live"]), (summary["shadow"], summary["challenger"])):
        lines.append(
            f"  {name:<{width}}{values['valid_rate']:>8.1%}{values['mean_output_chars']:>8.1f}"
        )
    for example in summary["disagreements"]:
        lines.append(f"  differs: {example['live'][:60]!r} vs {example['shadow'][:60]!r}")
    return lines

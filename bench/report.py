"""Benchmark results: one row per figure, written as JSON and Markdown."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    benchmark: str
    figure: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target, or not measured
    note: str = ""


def write(rows: list[Row], out_dir: Path, smoke: bool) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if smoke else "bench"
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "smoke": smoke,
    }
    (out_dir / f"{stem}.json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    )
    table = markdown(rows)
    (out_dir / f"{stem}.md").write_text(
        f"# switch benchmarks{' (smoke run)' if smoke else ''}\n\n"
        f"{meta['when']}, Python {meta['python']} on {meta['machine']}\n\n{table}"
    )
    return table


def markdown(rows: list[Row]) -> str:
    lines = [
        "| benchmark | figure | value | unit | target | met | note |",
        "|---|---|---:|---|---|---|---|",
    ]
    for r in rows:
        value = "n/a" if r.value is None else f"{r.value:,.1f}"
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(
            f"| {r.benchmark} | {r.figure} | {value} | {r.unit} | {r.target} | {met} | {r.note} |"
        )
    return "\n".join(lines) + "\n"

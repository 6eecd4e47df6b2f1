"""The README's "When a provider fails" table, from the fault matrix's own parameters.

`python -m tests.fault_table TIMES.json` rewrites the block between the markers in
README.md: each path's promise and bound from `tests/test_fault_matrix.py` ROWS, and the
outcome and seconds each cell had in the run that wrote TIMES.json (scripts/fault_table).
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys
from typing import Any

from harness.fakes import FAULTS

from .fault_rows import ROWS

README = Path(__file__).parents[1] / "README.md"
START, END = "<!-- fault-matrix:start -->", "<!-- fault-matrix:end -->"
CELL = re.compile(r"^(?P<outcome>[a-z ]+?)(?: (?P<seconds>[0-9.]+) s)?$")


def render(times: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Return the block: a summary per path, then every cell."""
    lines = [
        "| Path | Outcome | Bound | Worst cell, measured | Except |",
        "|---|---|---|---|---|",
    ]
    for name, row in ROWS.items():
        cells = times.get(name, {})
        worst = max(
            (cell["seconds"] for cell in cells.values() if cell["outcome"] != "silence"),
            default=None,
        )
        measured = (
            f"{worst:.1f} s ({max(cells, key=lambda f: cells[f]['seconds'])})" if worst else "-"
        )
        differs = ", ".join(f"{fault}: {outcome}" for fault, outcome in row.differs) or "-"
        lines.append(f"| {row.title} | {row.promise} | {row.bound:g} s | {measured} | {differs} |")
    lines += ["", "<details><summary>Every cell: outcome and seconds</summary>", ""]
    lines.append("| Fault | " + " | ".join(ROWS) + " |")
    lines.append("|---" * (len(ROWS) + 1) + "|")
    for fault in FAULTS:
        row_cells = []
        for name, row in ROWS.items():
            if fault in row.skip:
                row_cells.append("n/a")
                continue
            cell = times.get(name, {}).get(fault)
            outcome = row.expected(fault)
            row_cells.append(
                f"{outcome} {cell['seconds']:.1f} s"
                if cell and cell["outcome"] != "silence"
                else outcome
            )
        lines.append(f"| {fault} | " + " | ".join(row_cells) + " |")
    lines += ["", "</details>"]
    return "\n".join(lines)


def block(text: str) -> str:
    """Return the README's current block."""
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def cells_in(text: str) -> dict[tuple[str, str], str]:
    """Return the outcome the README states for each (fault, path), times left out."""
    grid = block(text).split("<summary>", 1)[1]
    lines = [line for line in grid.splitlines() if line.startswith("| ") and "---" not in line]
    header = [part.strip() for part in lines[0].strip("|").split("|")][1:]
    found = {}
    for line in lines[1:]:
        fault, *parts = [part.strip() for part in line.strip("|").split("|")]
        for name, part in zip(header, parts, strict=True):
            match = CELL.match(part)
            found[fault, name] = match["outcome"] if match else part
    return found


def main() -> int:
    """Rewrite README.md's block from a run's times."""
    times = json.loads(Path(sys.argv[1]).read_text())
    missing = [name for name in ROWS if name not in times]
    if missing:
        print(f"no times for {missing}: run the whole matrix", file=sys.stderr)  # noqa: T201
        return 1
    text = README.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{START}\n{render(times)}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

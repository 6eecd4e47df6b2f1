"""Print the installed Home Assistant's package constraints, less the lane's overrides.

uv applies constraints on top of overrides; the lane's override (requirements/minimum:
the openai the voice worker gets) must win over HA's pin, as it does in that lane's
setting. Used by scripts/setup.
"""

from __future__ import annotations

from pathlib import Path
import re
import sys

import homeassistant


def _name(line: str) -> str:
    """Return a requirement line's normalised package name ("" for none)."""
    return re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def main(overrides: str) -> None:
    """Print HA's package_constraints.txt without the packages `overrides` names."""
    lines = Path(overrides).read_text().splitlines()
    overridden = {_name(line) for line in lines if line.strip() and not line.startswith("#")}
    constraints = Path(homeassistant.__file__).parent / "package_constraints.txt"
    kept = [line for line in constraints.read_text().splitlines() if _name(line) not in overridden]
    print("\n".join(kept))


if __name__ == "__main__":
    main(sys.argv[1])

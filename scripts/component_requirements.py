"""Print the requirements of Home Assistant integrations, as HA would install them.

Reads the installed HA's manifests: each named integration, and everything it depends on
(`dependencies`; an `after_dependencies` one only when it is named too), gives its
`requirements`. Used by scripts/setup with requirements/components.txt.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

import homeassistant.components


def main(listing: str) -> None:
    """Print one requirement a line for the integrations listed in `listing`."""
    root = Path(homeassistant.components.__path__[0])
    wanted = [line.split("#", 1)[0].strip() for line in Path(listing).read_text().splitlines()]
    todo = [name for name in wanted if name]
    seen: set[str] = set()
    requirements: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        manifest = root / name / "manifest.json"
        if not manifest.exists():
            sys.exit(f"component_requirements: Home Assistant has no integration {name!r}")
        data = json.loads(manifest.read_text())
        requirements.update(data.get("requirements", []))
        todo.extend(data.get("dependencies", []))
    print("\n".join(sorted(requirements)))


if __name__ == "__main__":
    main(sys.argv[1])

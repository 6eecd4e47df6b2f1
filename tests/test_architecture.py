"""The boundaries the layout promises, enforced: the voice package, import cycles, long functions.

The analysis is harness/shape.py's, the one `scripts/shape` prints.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from harness.shape import (
    LONG_MARK,
    MAX_FUNCTION_LINES,
    PACKAGE,
    REPO,
    imports,
    long_functions,
    modules,
    run_time_cycles,
)

VOICE = REPO / PACKAGE.replace(".", "/") / "voice"

# Run in a fresh interpreter: this one has Home Assistant loaded. A finder ahead of every
# other refuses `homeassistant` and its modules, then every module of the worker's package
# (its `__main__` too: it runs only under `if __name__ == "__main__"`) is imported.
PROBE = textwrap.dedent(
    """\
    import importlib, importlib.abc, json, pkgutil, sys

    class NoHomeAssistant(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "homeassistant" or name.startswith("homeassistant."):
                raise ImportError(f"{name} is refused: the voice package runs without HA")
            return None

    sys.meta_path.insert(0, NoHomeAssistant())
    failed, imported = {}, []
    try:
        import shackleton_voice
    except Exception as err:
        failed["shackleton_voice"] = f"{type(err).__name__}: {err}"
    else:
        imported.append("shackleton_voice")
        for info in pkgutil.walk_packages(shackleton_voice.__path__, "shackleton_voice."):
            try:
                importlib.import_module(info.name)
            except Exception as err:
                failed[info.name] = f"{type(err).__name__}: {err}"
            else:
                imported.append(info.name)
    # One that swallowed the ImportError and got HA some other way would show here.
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "homeassistant")
    print(json.dumps({"failed": failed, "imported": imported, "loaded": loaded}))
    """
)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Enable nothing: these tests read the source and run their own interpreters."""


@pytest.fixture(autouse=True)
def core_integration() -> None:
    """Start no Home Assistant: nothing here needs one."""


def voice_modules_import_without_ha(cwd: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """Import every module of `shackleton_voice` under `cwd` with HA unimportable.

    Return the modules that failed (with why), those imported, and any HA module loaded.
    """
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    return dict(result["failed"]), list(result["imported"]), list(result["loaded"])


def test_voice_package_imports_nothing_from_home_assistant() -> None:
    """Every module of the worker's package imports without Home Assistant."""
    failed, imported, loaded = voice_modules_import_without_ha(REPO)
    assert not failed, "\n".join(f"{name}: {why}" for name, why in failed.items())
    assert loaded == []
    # Each file was imported: a module the walk missed would go unchecked.
    expected = {
        ".".join(("shackleton_voice", *path.relative_to(VOICE).with_suffix("").parts))
        for path in VOICE.rglob("*.py")
    }
    assert sorted(imported) == sorted(name.removesuffix(".__init__") for name in expected)


def test_voice_package_names_home_assistant_nowhere() -> None:
    """No import of Home Assistant in the voice package, not even inside a function."""
    found = []
    for path in sorted(VOICE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            found += [
                f"{path.relative_to(REPO)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] == "homeassistant"
            ]
    assert not found, "the voice package imports Home Assistant:\n" + "\n".join(found)


def test_no_import_cycle_at_run_time() -> None:
    """The integration's modules import each other without a cycle (TYPE_CHECKING aside)."""
    found = run_time_cycles(imports(modules()))
    assert not found, "import cycles at run time:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_long_function() -> None:
    """No function is over the limit unless a `# Long:` comment just above it says why."""
    found = long_functions(modules())
    assert not found, (
        f"functions over {MAX_FUNCTION_LINES} lines (shorten them, or say why in a "
        f"`{LONG_MARK}` comment just above):\n"
        + "\n".join(f"  {f.length:4d}  {f.where}" for f in found)
    )


def test_the_analysis_finds_what_it_should(tmp_path: Path) -> None:
    """A made-up package: a cycle at run time, one under TYPE_CHECKING, two long functions."""
    package = tmp_path / PACKAGE.replace(".", "/")
    (package / "sub").mkdir(parents=True)
    body = "".join(f"    x = {n}\n" for n in range(MAX_FUNCTION_LINES))
    sources = {
        "__init__.py": "from . import a\n",
        "a.py": "from .sub.b import thing\n\n\ndef short():\n    return 1\n",
        "sub/__init__.py": "",
        "sub/b.py": "from ..c import other\n\nthing = 1\n",
        "c.py": f"from custom_components.shackleton import a\n\n\ndef over():\n{body}",
        "d.py": (
            "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .e import x\n"
            f"\n\n{LONG_MARK} a reason\n# on two lines\n@decorated\ndef excused():\n{body}"
        ),
        "e.py": "from . import d\n\n\nclass K:\n    def method(self):\n"
        + textwrap.indent(body, "    "),
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    found = modules(tmp_path)
    graph = imports(found)
    assert run_time_cycles(graph) == [
        ("shackleton.a", "shackleton.sub.b", "shackleton.c", "shackleton.a")
    ]
    assert ("shackleton.d", "shackleton.e") in graph.type_checking
    assert ("shackleton.d", "shackleton.e") not in graph.run_time
    assert [(f.where, f.length) for f in long_functions(found)] == [
        ("c.py:4 over", MAX_FUNCTION_LINES + 1),
        ("e.py:5 K.method", MAX_FUNCTION_LINES + 1),
    ]

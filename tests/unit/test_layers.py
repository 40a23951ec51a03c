"""The layering rules a tool cannot see: no private name crosses a package, and private modules are
reached from another package only where this test names the reason (``lint-imports`` checks the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (importing package, imported private module): why the crossing stays.
ALLOWED_PRIVATE_MODULES = {
    ("kitaru", "kitaru.client._http"): "the HTTP implementation of the service protocol ships with the client",
    ("kitaru.mcp", "kitaru.cli._output"): "the CLI and MCP are one presentation layer and share its JSON rendering",
    ("kitaru.mcp", "kitaru.cli._stacks"): "the CLI and MCP show a stack the same way (public_stack)",
    ("kitaru.client", "kitaru.llm._resolve"): "the client's model admin reuses the SDK's model resolution",
    ("kitaru.testing", "kitaru.llm._fake_server"): "kitaru.testing publishes the fake model server",
}


def _package(module: str) -> str:
    """``kitaru.runtime._driver`` -> ``kitaru.runtime``; top-level ``kitaru._x`` modules are Kitaru-wide internals."""
    parts = module.split(".")
    if parts[0] == "kitaru_server":
        return "kitaru_server"
    return ".".join(parts[:2]) if len(parts) > 1 and not parts[1].startswith("_") else "kitaru"


def _imports():
    for base, top in ((ROOT / "kitaru", "kitaru"), (ROOT / "server" / "kitaru_server", "kitaru_server")):
        for path in sorted(base.rglob("*.py")):
            parts = (top, *path.relative_to(base).with_suffix("").parts)
            module = ".".join(part for part in parts if part != "__init__")
            for node in _runtime_nodes(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    if node.module.split(".")[0] in ("kitaru", "kitaru_server"):
                        yield module, node.module, [alias.name for alias in node.names], node.lineno


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def test_no_private_name_is_imported_from_another_package():
    crossings = [
        f"{module} imports {names} from {target} (line {line})"
        for module, target, names, line in _imports()
        if _package(module) != _package(target) and [name for name in names if name.startswith("_") and name != "__version__"]
    ]
    assert crossings == []


def test_private_modules_of_another_package_only_where_named():
    crossings = set()
    for module, target, _, line in _imports():
        owner, importer = _package(target), _package(module)
        private = any(part.startswith("_") for part in target.split(".")[len(owner.split(".")) :])
        if private and owner != importer and owner != "kitaru" and (importer, target) not in ALLOWED_PRIVATE_MODULES:
            crossings.add(f"{module} imports {target} (line {line})")
    assert sorted(crossings) == []

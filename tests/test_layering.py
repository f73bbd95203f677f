"""The import layering of kgpeft: no import loop, and every import that goes up a layer has a reason.

The graph is read from the source with :mod:`ast` (nothing is imported): every ``import`` and
``from ... import`` of a kgpeft module, at module level and inside functions alike (a lazy import
still runs the module it names), except those under ``if TYPE_CHECKING:``, which never run. Importing
``kgpeft.a.b`` first runs the package ``kgpeft.a`` (its ``__init__``), so an import of a submodule
from outside its package also counts as an import of the package. The root package ``kgpeft`` is
left out of that rule: every module runs it, and it imports only the errors and the graph (the rest
of its names load on first use, not at import).
"""

from __future__ import annotations

import ast
import collections
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "kgpeft"

#: The packages (and top-level modules) of kgpeft, bottom to top: each may import those below it.
LAYERS = [
    "kgpeft.errors",
    "kgpeft.utils",
    "kgpeft.io",
    "kgpeft.configuration",
    "kgpeft.graph",
    "kgpeft",  # the root package: the errors, the graph and the version; the rest loads on first use
    "kgpeft.pretrained",
    "kgpeft.datasets",
    "kgpeft.tasks",
    "kgpeft.evaluation",
    "kgpeft.linking",
    "kgpeft.retrieval",
    "kgpeft.kge",
    "kgpeft.checkpoint",
    "kgpeft.card",
    "kgpeft.nn",
    "kgpeft.tuners",
    "kgpeft.padding",
    "kgpeft.training",
    "kgpeft.selection",
    "kgpeft.data",
    "kgpeft.model",
    "kgpeft.inference",
    "kgpeft.explain",
    "kgpeft.pipeline",
    "kgpeft.cli",
]

#: ``(importing module, imported module) -> why``: the imports allowed to go up a layer.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, mods: dict[str, Path]) -> list[str]:
    """The kgpeft modules ``node`` runs, each as the longest module name it names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".")[: len(module.split(".")) - (node.level - 1) - (0 if is_package else 1)]
            base = ".".join(base + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    out = []
    for name in names:
        if name.split(".")[0] != "kgpeft":
            continue
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        out.append(name)
    return out


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """``graph[a][b]``: a line where module ``a`` imports (runs) module ``b``."""
    mods = _modules(root)
    graph: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or _under_type_checking(node, parents):
                continue
            for target in _imported(node, module, path.name == "__init__.py", mods):
                parts = target.split(".")
                # importing kgpeft.a.b runs kgpeft.a first, unless the importer is inside kgpeft.a
                runs = [".".join(parts[:k]) for k in range(2, len(parts) + 1)]
                for name in runs:
                    if name != module and not module.startswith(name + ".") and name in mods:
                        graph[module].setdefault(name, node.lineno)
    return graph


@functools.cache
def kgpeft_graph() -> dict[str, dict[str, int]]:
    """:func:`import_graph` of the kgpeft tree, read once for all the tests (they only read it)."""
    return import_graph()


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return loops


def layer(module: str) -> str:
    """The entry of :data:`LAYERS` a module belongs to: its top-level package below ``kgpeft``."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_layers_name_every_package_once():
    assert len(set(LAYERS)) == len(LAYERS)
    assert {layer(m) for m in _modules()} == set(LAYERS)


def test_no_import_loop():
    loops = strongly_connected(kgpeft_graph())
    assert loops == [], "import loops (modules importing each other, perhaps through others):\n" + "\n".join(
        " <-> ".join(loop) for loop in loops
    )


def test_no_import_goes_up_a_layer_without_a_reason():
    rank = {name: k for k, name in enumerate(LAYERS)}
    upward = {}
    for module, targets in kgpeft_graph().items():
        for target, line in targets.items():
            if rank[layer(target)] > rank[layer(module)] and (module, target) not in ALLOWED_UPWARD:
                upward[(module, target)] = line
    assert not upward, "imports that go up a layer (move the code down, or add a reason to ALLOWED_UPWARD):\n" + (
        "\n".join(f"{m}:{line} -> {t}" for (m, t), line in sorted(upward.items()))
    )


def test_every_allowed_upward_import_exists_and_goes_up():
    rank = {name: k for k, name in enumerate(LAYERS)}
    graph = kgpeft_graph()
    stale = [(m, t) for m, t in ALLOWED_UPWARD if t not in graph.get(m, {}) or rank[layer(t)] <= rank[layer(m)]]
    assert not stale, f"ALLOWED_UPWARD entries that no longer go up (remove them): {stale}"


def test_the_graph_sees_function_level_and_package_imports(tmp_path):
    """The reader itself: a lazy import counts, a TYPE_CHECKING one does not, a submodule runs its package."""
    files = {
        "__init__.py": "",
        "low.py": "from kgpeft.errors import E\n",
        "errors.py": "",
        "pkg/__init__.py": "from kgpeft.pkg.inner import x\n",
        "pkg/inner.py": "x = 1\n",
        "user.py": (
            "from typing import TYPE_CHECKING\n"
            "from kgpeft.pkg.inner import x\n"
            "if TYPE_CHECKING:\n    from kgpeft import low\n"
            "def f():\n    from kgpeft import errors\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / "kgpeft" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "kgpeft" / name).write_text(text)
    graph = import_graph(tmp_path / "kgpeft")
    assert "kgpeft.errors" in graph["kgpeft.low"]  # module level
    assert {"kgpeft.pkg", "kgpeft.pkg.inner"} <= set(graph["kgpeft.user"])  # runs kgpeft/pkg/__init__.py first
    assert "kgpeft.low" not in graph["kgpeft.user"]  # under TYPE_CHECKING
    assert "kgpeft.errors" in graph["kgpeft.user"]  # inside a function
    assert "kgpeft.pkg" not in graph.get("kgpeft.pkg.inner", {})  # a package's own module does not run it again
    assert "kgpeft.datasets" in kgpeft_graph()["kgpeft.tasks.supersense"]  # and on the real tree
    loops = strongly_connected({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}})
    assert loops == [["a", "b", "c"]]


#: The most lines a module of kgpeft may have, and the most lines of code (docstring not counted)
#: a function may have unless its docstring says why it is longer ("Long because ...").
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def _long_functions(tree: ast.AST) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node) or ""
        first = node.body[1] if doc and len(node.body) > 1 else node.body[0]
        code = node.end_lineno - first.lineno + 1
        if code > MAX_FUNCTION_LINES and "Long because" not in doc:
            out.append((node.name, code))
    return out


def test_no_module_or_function_is_too_long():
    too_long = []
    for module, path in sorted(_modules().items()):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(ROOT.parent)}: {text.count(chr(10))} lines")
        too_long += [f"{module}.{name}: {n} lines of code" for name, n in _long_functions(ast.parse(text))]
    assert not too_long, (
        f"over {MAX_FILE_LINES} lines per module or {MAX_FUNCTION_LINES} per function (split it, or say "
        "'Long because ...' in the function's docstring):\n" + "\n".join(too_long)
    )


def test_the_length_check_counts_code_not_docstrings():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    doc = '    """' + "\n" * 100 + '    """\n'
    assert _long_functions(ast.parse(f"def f():\n{doc}{body}\n")) == [("f", MAX_FUNCTION_LINES + 1)]
    assert _long_functions(ast.parse(f"def f():\n{doc}" + "\n".join(body.splitlines()[:-1]) + "\n")) == []
    reason = '    """Long because one table."""\n'
    assert _long_functions(ast.parse(f"def f():\n{reason}{body}\n")) == []

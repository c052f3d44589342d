"""Acceptance (structure): imports point one way, and the model modules stay light."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import lstmgan

PACKAGE = Path(lstmgan.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every lstmgan module -> the lstmgan modules it imports anywhere (function-level imports included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import sub` imports the submodule pkg.sub when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 20 and "lstmgan.loading" in graph["lstmgan"]       # the parser sees the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["lstmgan.checkpoint"] = graph["lstmgan.checkpoint"] | {"lstmgan.loading"}   # the old dispatch edge
    assert find_cycle(graph) is not None


def test_the_file_format_and_the_models_import_no_training_code():
    graph = import_graph()
    assert graph["lstmgan.checkpoint"] <= {"lstmgan.errors"}
    for light in ("lstmgan.recurrent.models", "lstmgan.gan.models", "lstmgan.loading"):
        reachable, todo = set(), [light]
        while todo:
            for nxt in graph[todo.pop()] - reachable:
                reachable.add(nxt)
                todo.append(nxt)
        heavy = {m for m in reachable if m.endswith((".train", ".sweep", "training", "plots", "cli"))}
        assert not heavy, (light, heavy)


def external_imports(module: str) -> set[str]:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_importing_the_models_loads_no_progress_bars_plots_or_training():
    code = ("import sys, json, lstmgan.recurrent, lstmgan.gan.models; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'lstmgan'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert "lstmgan.recurrent.lstm" in loaded and "lstmgan.gan.models" in loaded
    assert not [m for m in loaded if m.startswith("matplotlib")]
    assert not [m for m in loaded if m.endswith((".train", ".sweep", "lstmgan.training", "lstmgan.runs",
                                                 "lstmgan.plots", "lstmgan.cli"))]
    # torch itself imports tqdm (torch.hub), so look at what our loaded modules import
    assert not [m for m in loaded if external_imports(m) & {"tqdm", "matplotlib"}]
    assert "tqdm" in external_imports("lstmgan.training")          # the check can see an import of tqdm


PARTS = ("lstmgan.recurrent", "lstmgan.gan")
ABOVE_THE_PARTS = ("lstmgan.cli", "lstmgan.__main__", "lstmgan.explorer")   # they (and `lstmgan`) may use both


def imports_pointing_up(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges from a shared module below the parts into a part, and from one part into the other (or into the
    loader, which sits above a part's own modules: a part finds its shipped files in `shipped`)."""
    def part_of(module):
        return next((p for p in PARTS if module == p or module.startswith(p + ".")), None)

    def above(module):
        return module == "lstmgan" or any(module == a or module.startswith(a + ".") for a in ABOVE_THE_PARTS)

    wrong = []
    for module, targets in graph.items():
        for target in targets:
            home, there = part_of(module), part_of(target)
            if home is None and there is not None and not above(module):
                wrong.append((module, target))                        # a shared module climbing into a part
            elif home and there and home != there:
                wrong.append((module, target))                        # one part leaning on the other
            elif module == "lstmgan.gan.classifier" and target == "lstmgan.loading":
                wrong.append((module, target))                        # scoring a GAN must not load Part I's loader
    return sorted(wrong)


def test_no_lower_module_imports_a_part():
    graph = import_graph()
    assert imports_pointing_up(graph) == []
    for module, target in (("lstmgan.loading", "lstmgan.recurrent.models"), ("lstmgan.sweeps", "lstmgan.gan.train"),
                           ("lstmgan.gan.classifier", "lstmgan.loading"), ("lstmgan.gan.metrics",
                                                                            "lstmgan.recurrent.palindrome")):
        planted = {**graph, module: graph[module] | {target}}            # each old edge is still caught
        assert (module, target) in imports_pointing_up(planted)

"""The package's modules import each other without cycles (function-level imports included):
the architecture reads top-down, engine -> tensor -> ops -> autograd -> nn/optim."""
import ast
import os

import jitgrad

ROOT = os.path.dirname(jitgrad.__file__)


def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _is_module(name):
    base = os.path.join(os.path.dirname(ROOT), *name.split("."))
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def import_graph():
    graph = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".py") or f.startswith("_interpreter"):
                continue
            path = os.path.join(folder, f)
            me = _module_name(path)
            package = me if f == "__init__.py" else me.rsplit(".", 1)[0]
            edges = graph.setdefault(me, set())
            tree = ast.parse(open(path).read())
            # a module's `if __name__ == "__main__":` block runs as a script, never on import
            tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and
                                                      "__main__" in ast.unparse(n.test))]
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                        base = ".".join(parts + ([base] if base else []))
                    targets = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
                               for a in node.names]
                else:
                    continue
                edges.update(t for t in targets if t.split(".")[0] == "jitgrad" and t != me)
    return graph


def _cycle(graph):
    state = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path + [n]
            if n not in state:
                found = visit(n, path + [n])
                if found:
                    return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


def test_no_import_cycles():
    """A submodule never imports its own package's __init__ (or anything that leads back)."""
    graph = import_graph()
    # a package imports its submodules to export them: edges up from a submodule to an ancestor
    # package are the cycles; edges down from __init__ are expected
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)

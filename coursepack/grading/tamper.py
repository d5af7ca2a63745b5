"""Hold for review any submission that tampers with how its tests compare answers.

Hidden tests run in the same kernel as the student's code, so code that patches `torch.allclose`,
`numpy.testing`, a builtin or a checks helper (`check_close`, ...) would make wrong answers pass.
No check that runs inside that kernel can be sound against code that runs there too, so the
defence has two layers and a submission that trips either is **held for review**: every test cell
of the notebook scores 0, the notebook is flagged in the gradebook with the reason, and the marks
it would have had are recorded for the reviewer.

1. `scan` (outside the kernel, before it runs, so nothing at run time can evade it): every code
   cell that is not the instructor's own text is parsed; rebinding a name the tests rely on
   (modules, checks helpers, builtins), assigning into a module or class (`torch.allclose = ...`),
   the means to do either indirectly (`setattr`, `exec`, `__dict__`, `sys.modules`, frames,
   `get_ipython`, ...), classes that redefine comparison (`__eq__`, `__torch_function__`,
   subclasses of `torch.Tensor`) and reading `NBGRADER_EXECUTION` are findings.
2. `SNAPSHOT` / `PROBE` (inside the kernel, defence in depth): before any student code runs, the
   kernel records the identity of every builtin, of the callables of the modules the notebook's
   own cells import and of the IPython machinery; after every test cell and at the end the probe
   reports anything rebound and runs canaries (`torch.allclose(0, 1)`, `check_close` on unequal
   tensors, ...) that must fail.
"""
from __future__ import annotations

import ast
import builtins

from nbgrader import utils

# Modules whose import is itself a reason to look at a submission.
SUSPICIOUS_MODULES = {"builtins", "importlib", "ctypes", "gc", "inspect", "types", "unittest", "pytest", "IPython",
                      "ipykernel", "traitlets", "zmq", "jupyter_client", "nbformat", "nbgrader", "linecache", "dis",
                      "marshal", "code", "codeop", "sitecustomize", "_thread", "signal", "faulthandler", "atexit"}
SUSPICIOUS_CALLS = {"setattr", "delattr", "exec", "eval", "compile", "__import__", "globals", "locals", "vars",
                    "get_ipython", "breakpoint"}
SUSPICIOUS_ATTRIBUTES = {"__builtins__", "__code__", "__globals__", "__closure__", "__dict__", "__setattr__",
                         "__delattr__", "__subclasses__", "__import__", "__defaults__", "__kwdefaults__", "__wrapped__",
                         "_getframe", "f_back", "f_locals", "f_globals", "gi_frame", "tb_frame", "settrace",
                         "setprofile", "modules", "meta_path", "path_hooks", "excepthook", "displayhook",
                         "addaudithook", "user_ns", "ast_transformers", "input_transformers_post", "kernel",
                         "__class__", "__bases__", "__mro__"}
SUSPICIOUS_NAMES = {"__builtins__", "_ih", "_oh", "_ii", "_iii", "In", "Out", "_i"}
COMPARISON_DUNDERS = {"__eq__", "__ne__", "__bool__", "__torch_function__", "__torch_dispatch__",
                      "__array_function__", "__array_ufunc__", "__instancecheck__", "__subclasscheck__"}
TENSOR_BASES = {"Tensor", "ndarray", "Parameter"}
SAFE_MAGICS = {"timeit", "time", "matplotlib", "precision", "pprint", "who", "whos", "config"}


def _transform(source: str) -> str:
    """IPython syntax (magics, `!cmd`) turned into Python, as the kernel will run it."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _bound_names(target) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [n for elt in target.elts for n in _bound_names(elt)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def _root(node) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def module_level_bindings(tree: ast.Module) -> list[tuple[str, int]]:
    """(name, line) for every global name a cell binds: at module level or through `global` in a function."""
    found = []
    declared_global = {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not in_function or child.name in declared_global:
                    found.append((child.name, child.lineno))
                visit(child, True)
                continue
            if isinstance(child, ast.Lambda):
                continue
            names = []
            if isinstance(child, ast.Assign):
                names = [n for t in child.targets for n in _bound_names(t)]
            elif isinstance(child, ast.AugAssign | ast.AnnAssign | ast.For | ast.AsyncFor):
                names = _bound_names(child.target)
            elif isinstance(child, ast.NamedExpr):
                names = _bound_names(child.target)
            elif isinstance(child, ast.withitem) and child.optional_vars is not None:
                names = _bound_names(child.optional_vars)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                names = [(a.asname or a.name).split(".")[0] for a in child.names]
            elif isinstance(child, ast.Delete):
                names = [n for t in child.targets for n in _bound_names(t)]
            elif isinstance(child, ast.ExceptHandler) and child.name:
                names = [child.name]
            found.extend((n, child.lineno) for n in names if not in_function or n in declared_global)
            visit(child, in_function)

    visit(tree, False)
    return found


def imported_modules(tree: ast.AST) -> dict[str, str]:
    """{bound name: module} for every import in a tree (`import numpy as np` -> {'np': 'numpy'})."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                found[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(_transform(source))
    except (SyntaxError, ValueError):
        return None


class Policy:
    """What the instructor's notebook makes protected: its imports, its checks helpers, the builtins its tests use."""

    def __init__(self, source_nb):
        self.trusted_sources = {c.source for c in source_nb.cells if c.cell_type == "code"}
        self.modules: dict[str, str] = {}
        self.helpers: set[str] = set()
        contract, used = set(), set()
        for cell in source_nb.cells:
            if cell.cell_type != "code":
                continue
            tree = _parse(cell.source)
            if tree is None:
                continue
            if utils.is_solution(cell):
                contract.update(n for n, _ in module_level_bindings(tree))
                continue
            self.modules.update(imported_modules(tree))
            if utils.is_locked(cell) and not utils.is_grade(cell):
                self.helpers.update(n for n, _ in module_level_bindings(tree) if not n.startswith("__"))
            if utils.is_grade(cell):
                used.update(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))
        self.protected = (set(self.modules) | self.helpers | (used & set(vars(builtins)))) - contract

    def scan(self, nb) -> list[str]:
        """Findings (sentences naming the cell) for every code cell of `nb` that is not the instructor's text."""
        findings = []
        for index, cell in enumerate(nb.cells, 1):
            if cell.cell_type != "code" or cell.source in self.trusted_sources:
                continue
            if utils.is_grade(cell) or utils.is_locked(cell):
                continue  # restored from the gradebook by nbgrader before this runs
            tree = _parse(cell.source)
            where = f"cell {index}" + (f" ({cell.metadata.nbgrader.grade_id})" if utils.is_solution(cell) else "")
            if tree is None:
                if "NBGRADER_EXECUTION" in cell.source:
                    findings.append(f"{where}: reads NBGRADER_EXECUTION (behaves differently when graded)")
                continue
            findings += [f"{where}: {what}" for what in self._scan_tree(tree)]
        return findings

    def _scan_tree(self, tree: ast.Module) -> list[str]:
        found = []
        modules = {**self.modules, **imported_modules(tree)}
        own_imports = imported_modules(tree)
        for name, line in module_level_bindings(tree):
            if name in self.modules and own_imports.get(name) == self.modules[name]:
                continue  # importing the same module again binds the same object
            if name in self.protected:
                found.append(f"line {line}: rebinds {name!r}, which the tests rely on")
        for node in ast.walk(tree):
            line = getattr(node, "lineno", "?")
            if isinstance(node, ast.Attribute | ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
                root = _root(node)
                if root in modules or root in self.protected:
                    found.append(f"line {line}: assigns into {ast.unparse(node)!r} (patches {root!r})")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in names:
                    if module.split(".")[0] in SUSPICIOUS_MODULES:
                        found.append(f"line {line}: imports {module!r}")
                if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                    found.append(f"line {line}: star import can rebind the tests' names")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SUSPICIOUS_CALLS:
                if node.func.id == "get_ipython" and self._safe_magic(node, tree):
                    continue
                found.append(f"line {line}: calls {node.func.id}()")
            elif isinstance(node, ast.Attribute) and node.attr in SUSPICIOUS_ATTRIBUTES:
                if node.attr in {"modules", "kernel"} and _root(node) not in {"sys", "get_ipython"} | set(modules):
                    continue
                found.append(f"line {line}: uses {ast.unparse(node)!r}")
            elif isinstance(node, ast.Name) and node.id in SUSPICIOUS_NAMES:
                found.append(f"line {line}: uses {node.id!r}")
            elif isinstance(node, ast.Constant) and node.value == "NBGRADER_EXECUTION":
                found.append(f"line {line}: reads NBGRADER_EXECUTION (behaves differently when graded)")
            elif isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if (isinstance(base, ast.Attribute) and base.attr in TENSOR_BASES) or (
                            isinstance(base, ast.Name) and base.id in TENSOR_BASES):
                        found.append(f"line {line}: class {node.name} subclasses {ast.unparse(base)}")
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.Assign):
                        names = [item.name] if isinstance(item, ast.FunctionDef) else [
                            n for t in item.targets for n in _bound_names(t)]
                        for name in set(names) & COMPARISON_DUNDERS:
                            found.append(f"line {item.lineno}: class {node.name} redefines {name}")
        return found

    @staticmethod
    def _safe_magic(node: ast.Call, tree: ast.Module) -> bool:
        """`%timeit` and friends become get_ipython().run_line_magic('timeit', ...): allowed."""
        for parent in ast.walk(tree):
            if (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute)
                    and parent.func.value is node):
                method, args = parent.func.attr, parent.args
                if method in {"system", "getoutput"}:
                    return True
                if method in {"run_line_magic", "run_cell_magic"} and args and isinstance(args[0], ast.Constant):
                    return args[0].value in SAFE_MAGICS
        return False


# Run silently in the kernel before the first cell. MODULES and HELPERS are filled in by the grader.
SNAPSHOT = r'''
def __coursepack_make_probe(modules, _vars=vars, _callable=callable, _isinstance=isinstance, _type=type,
                            _getattr=getattr, _id=id, _len=len, _list=list, _sorted=sorted, _bool=bool):
    import builtins as _builtins
    import importlib as _importlib
    import sys as _sys
    watched, helpers = {}, {}
    shell = get_ipython()
    loaded = {}
    for name in modules:
        try:
            loaded[name] = _importlib.import_module(name)
        except Exception:
            pass
    for name, obj in _list(_vars(_builtins).items()):
        if name not in ("input", "get_ipython"):  # ipykernel binds these anew for every execution
            watched["builtins." + name] = obj
    for modname, mod in loaded.items():
        if modname in ("sys", "builtins"):  # IPython swaps sys.displayhook & co. around every execution
            continue
        for name, obj in _list(_vars(mod).items()):
            if _callable(obj) and not name.startswith("__"):
                watched[modname + "." + name] = obj
    for label, cls in (("torch.Tensor", _getattr(loaded.get("torch"), "Tensor", None)),
                       ("numpy.ndarray", _getattr(loaded.get("numpy"), "ndarray", None))):
        if cls is not None:
            for name, obj in _list(_vars(cls).items()):
                watched[label + "." + name] = obj
    for name in ("run_cell", "run_ast_nodes", "run_code", "showtraceback", "_showtraceback", "transform_cell",
                 "transform_ast", "ex", "ev", "safe_execfile"):
        watched["IPython shell." + name] = _getattr(_type(shell), name, None)
    lists = {"ast_transformers": _list(shell.ast_transformers),
             "input_transformers_post": _list(shell.input_transformers_post),
             "input_transformers_cleanup": _list(shell.input_transformers_cleanup),
             "meta_path": _list(_sys.meta_path), "path_hooks": _list(_sys.path_hooks)}
    kernel_methods = {name: _getattr(_type(shell.kernel), name, None)
                      for name in ("do_execute", "execute_request", "send_response")}
    hooks = {"settrace": _sys.settrace, "setprofile": _sys.setprofile}
    shell_names = ("run_cell", "run_ast_nodes", "run_code", "showtraceback", "_showtraceback", "transform_cell")
    on_instance = {name: _vars(shell).get(name) for name in shell_names}

    trusted_files = (_sys.prefix, _sys.base_prefix)

    def wraps(new, old):
        """torch wraps some of its own functions lazily (torch._dynamo: manual_seed): allowed from installed code."""
        seen = 0
        code = _getattr(new, "__code__", None)
        if code is None or not code.co_filename.startswith(trusted_files):
            return False
        while new is not None and seen < 5:
            new, seen = _getattr(new, "__wrapped__", None), seen + 1
            if new is old:
                return True
        return False

    def remember(names):
        ns = shell.user_ns
        for name in names:
            if name in ns:
                obj = ns[name]
                helpers[name] = (obj, _getattr(obj, "__code__", None), _getattr(obj, "__defaults__", None))

    def canary(label, call, problems, expect=AssertionError):
        try:
            call()
        except expect:
            return
        except BaseException as error:
            problems.append(label + " raised " + _type(error).__name__ + " instead of " + expect.__name__)
            return
        problems.append(label + " accepted a wrong value")

    def probe():
        problems = []
        for label, obj in watched.items():
            owner, _, name = label.rpartition(".")
            if owner == "builtins":
                now = _vars(_builtins).get(name)
            elif owner in loaded:
                now = _vars(loaded[owner]).get(name)
            elif owner == "torch.Tensor":
                now = _vars(loaded["torch"].Tensor).get(name)
            elif owner == "numpy.ndarray":
                now = _vars(loaded["numpy"].ndarray).get(name)
            else:
                now = _getattr(_type(shell), name, None)
            if now is not obj and not wraps(now, obj):
                problems.append(label + " was replaced")
        for name, obj in on_instance.items():
            if _vars(shell).get(name) is not obj:
                problems.append("IPython shell." + name + " was replaced on the instance")
        for name, method in kernel_methods.items():
            if _getattr(_type(shell.kernel), name, None) is not method or name in _vars(shell.kernel):
                problems.append("kernel." + name + " was replaced")
        now_lists = {"ast_transformers": shell.ast_transformers,
                     "input_transformers_post": shell.input_transformers_post,
                     "input_transformers_cleanup": shell.input_transformers_cleanup,
                     "meta_path": _sys.meta_path, "path_hooks": _sys.path_hooks}
        for name, before in lists.items():
            after = _list(now_lists[name])
            if _len(after) != _len(before) or any(a is not b for a, b in zip(after, before)):
                problems.append(name + " was changed")
        if _sys.gettrace() is not None or _sys.getprofile() is not None:
            problems.append("a trace or profile function is installed")
        for name, fn in hooks.items():
            if _getattr(_sys, name) is not fn:
                problems.append("sys." + name + " was replaced")
        ns = shell.user_ns
        for name, (obj, code, defaults) in helpers.items():
            if ns.get(name) is not obj:
                problems.append("the checks helper " + name + " was redefined")
            elif _getattr(obj, "__code__", None) is not code or _getattr(obj, "__defaults__", None) != defaults:
                problems.append("the checks helper " + name + " was altered")
        torch = loaded.get("torch")
        if torch is not None:
            a, b = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
            for label, value in (("torch.allclose", lambda: torch.allclose(a, b)),
                                 ("torch.equal", lambda: torch.equal(a, b)),
                                 ("torch.isclose", lambda: torch.isclose(a, b).any()),
                                 ("Tensor.__eq__", lambda: (a == b).any()),
                                 ("Tensor.allclose", lambda: a.allclose(b))):
                try:
                    if _bool(value()):
                        problems.append(label + " says 0 equals 1")
                except BaseException as error:
                    problems.append(label + " raised " + _type(error).__name__)
            canary("torch.testing.assert_close", lambda: torch.testing.assert_close(a, b), problems)
            if "check_close" in helpers:
                canary("check_close", lambda: helpers["check_close"][0](a, b, "canary"), problems)
        np = loaded.get("numpy")
        if np is not None:
            if _bool(np.allclose(0.0, 1.0)) or _bool(np.array_equal([0.0], [1.0])):
                problems.append("numpy comparison says 0 equals 1")
            canary("numpy.testing.assert_allclose", lambda: np.testing.assert_allclose(0.0, 1.0), problems)
        if "check_true" in helpers:
            canary("check_true", lambda: helpers["check_true"][0](False, "canary"), problems)
        if "check_raises" in helpers:
            canary("check_raises", lambda: helpers["check_raises"][0](ValueError, lambda: None), problems)
        return _sorted(set(problems))

    probe.remember = remember
    return probe


__coursepack_probe = __coursepack_make_probe(MODULES)
del __coursepack_make_probe
'''
PROBE = "__coursepack_probe()"


def snapshot_code(modules) -> str:
    return SNAPSHOT.replace("MODULES", repr(sorted(set(modules))))


def remember_code(names) -> str:
    return f"__coursepack_probe.remember({sorted(names)!r})"

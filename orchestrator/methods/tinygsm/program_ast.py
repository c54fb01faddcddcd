"""Read a teacher's Python program through its AST: does it parse, which function holds the
solution, which top-level statements are only driver code, does it assign ``result``.

These are the questions ``replies`` (is a cut-off program complete?) and ``function_form``
(what becomes the body of ``simple_math_problem``?) ask of a program. Everything here only
inspects syntax trees: it does not rewrite source text, does not execute or sandbox anything,
and does not decide what to do with a program that fails these checks.
"""

from __future__ import annotations

import ast
import warnings

__all__ = [
    "assigns_result",
    "ast_parse",
    "defaults",
    "find_main",
    "is_docstring",
    "is_driver",
    "parses",
]


def ast_parse(source: str) -> ast.Module:
    """``ast.parse`` without compile warnings (e.g. "invalid escape sequence", a
    DeprecationWarning or SyntaxWarning depending on the Python version) on stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


def parses(source: str) -> bool:
    try:
        ast_parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _calls(value: ast.expr | None, names: set[str]) -> bool:
    return (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in names
    )


def is_driver(node: ast.stmt, names: set[str]) -> bool:
    """Top-level code that is not part of the solution: a bare constant or name (docstring,
    stray word), a ``print(...)`` statement, ``if __name__ == "__main__":``, or a statement
    whose value is a call of one of ``names`` (``simple_math_problem()``,
    ``answer = solution()``)."""
    if isinstance(node, ast.Expr):
        value = node.value
        if isinstance(value, (ast.Constant, ast.Name)):
            return True  # a docstring, or a stray word such as "Explanation"
        return _calls(value, {"print"} | names)
    if isinstance(node, ast.AnnAssign) and node.value is None:
        return isinstance(node.annotation, ast.Constant)  # prose such as "Answer: 7"
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return _calls(node.value, names)
    if isinstance(node, ast.If):
        test = node.test
        return (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
        )
    return False


def defaults(fn: ast.FunctionDef) -> list[tuple[str, ast.expr]] | None:
    """``(name, default)`` for each parameter of ``fn``, or None if one has no default (the
    function cannot be called with no arguments)."""
    args = fn.args
    if args.vararg or args.kwarg:
        return None
    positional = args.posonlyargs + args.args
    if len(args.defaults) != len(positional):
        return None
    pairs = [(a.arg, d) for a, d in zip(positional, args.defaults, strict=True)]
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is None:
            return None
        pairs.append((arg.arg, default))
    return pairs


def _driver_calls(node: ast.stmt) -> set[str]:
    """Names of functions a top-level driver statement calls: ``f()``, ``print(f())``,
    ``answer = f()``, also inside ``if __name__ == "__main__":``."""
    if isinstance(node, ast.If) and is_driver(node, set()):
        return set().union(*(_driver_calls(n) for n in node.body))
    value = node.value if isinstance(node, (ast.Expr, ast.Assign, ast.AnnAssign)) else None
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "print"
        and value.args
    ):
        value = value.args[0]
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return {value.func.id}
    return set()


def find_main(tree: ast.Module, function_name: str) -> ast.FunctionDef | None:
    """The function whose body is the solution: ``function_name`` if defined; else the one
    argument-free top-level function that driver code calls (or the only function), when
    everything else at top level is imports, definitions, constants above it, or driver code
    (``print(solution())``). None when the program is top-level code."""
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    for fn in functions:
        if fn.name == function_name:
            return fn
    callable_ = [f for f in functions if defaults(f) is not None]
    called = set().union(*(_driver_calls(n) for n in tree.body))
    candidates = [f for f in callable_ if f.name in called]
    if not candidates and len(functions) == 1:
        candidates = callable_
    if len(candidates) != 1:
        return None
    fn = candidates[0]
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            continue
        if is_driver(node, {fn.name}):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno < fn.lineno:
            continue  # a constant defined above the function
        return None
    return fn


def assigns_result(nodes: list[ast.stmt]) -> bool:
    """Whether ``result`` is assigned in these statements (not counting nested functions)."""
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Name) and node.id == "result" and isinstance(node.ctx, ast.Store):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False

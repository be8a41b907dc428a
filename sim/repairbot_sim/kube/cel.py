"""Kubernetes-flavoured CEL for the emulated API server, on cel-python (``celpy``).

ValidatingAdmissionPolicies (``object``, ``oldObject``, ``request``, ...) and
CRD ``x-kubernetes-validations`` (``self``, ``oldSelf``) are written in CEL.
kube-apiserver compiles every expression when the policy or CRD is written
and refuses one that does not compile, so :func:`compile_expression` does the
same checks up front: syntax, and every identifier and function must be
declared (cel-go's ``undeclared reference to 'x' (in container '')``), since
celpy on its own would only notice at evaluation time. Compiled programs are
cached by (expression, declared variables): a policy is evaluated for every
matching write, compiled once. Inputs are converted to CEL only for the
variables an expression names, and once per request however many
expressions read them (:class:`Activation`): the conversion of a whole Node
costs more than most evaluations.

Values cross as JSON (the shape objects have in the store) and come back as
JSON. The Kubernetes string extensions the chart's policies may use
(``lowerAscii``, ``split``, ``join``, ``replace``, ...) are provided on top of
celpy's standard library; ``has()`` and the ``all``/``exists``/
``exists_one``/``map``/``filter`` macros are celpy's own. Not emulated:
static type checking against the schema, cost budgets, the optional syntax
(``obj.?field``) and the ``quantity``/``url``/``ip`` libraries.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import celpy
import lark
from celpy import celtypes

__all__ = ["Activation", "CelCompileError", "CelEvalError", "Program", "compile_expression", "to_cel", "to_json"]

# celpy logs every evaluation at INFO/DEBUG; that is noise for a server evaluating on every write.
logging.getLogger("celpy").setLevel(logging.WARNING)

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_GLOBAL_FUNCTIONS = frozenset(
    {
        "has",
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "duration",
        "timestamp",
        "dyn",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
    }
)
_BUILTIN_NAMES = frozenset({"null_type", "list", "map", "google"})
_MAX_MESSAGE_BYTES = 5 * 1024
"""cel-go's ``MaxEvaluatedMessageExpressionSizeBytes``: a longer messageExpression result is discarded."""


class CelCompileError(ValueError):
    """An expression the API server refuses to store, worded as cel-go words it."""

    def __init__(self, expression: str, detail: str, line: int = 1, column: int = 1) -> None:
        pointer = "." * max(column - 1, 0) + "^"
        first_line = expression.splitlines()[line - 1] if expression.splitlines() else expression
        super().__init__(f"compilation failed: ERROR: <input>:{line}:{column}: {detail}\n | {first_line}\n | {pointer}")
        self.expression = expression


class CelEvalError(RuntimeError):
    """An expression that compiled but failed on this input (no such key, division by zero, ...)."""


# ------------------------------------------------------------ extension library


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"no such overload: {name} on {type(value).__name__}")
    return str(value)


def _lower_ascii(text: Any) -> celtypes.StringType:
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in _str(text, "lowerAscii")))


def _upper_ascii(text: Any) -> celtypes.StringType:
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in _str(text, "upperAscii")))


def _replace(text: Any, old: Any, new: Any, limit: Any = -1) -> celtypes.StringType:
    return celtypes.StringType(_str(text, "replace").replace(_str(old, "replace"), _str(new, "replace"), int(limit)))


def _split(text: Any, separator: Any, limit: Any = -1) -> celtypes.ListType:
    count = int(limit)
    if count == 0:
        return celtypes.ListType([])
    parts = _str(text, "split").split(_str(separator, "split"), count - 1 if count > 0 else -1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(items: Any, separator: Any = "") -> celtypes.StringType:
    if not isinstance(items, list):
        raise TypeError("no such overload: join")
    return celtypes.StringType(_str(separator, "join").join(_str(item, "join") for item in items))


def _trim(text: Any) -> celtypes.StringType:
    return celtypes.StringType(_str(text, "trim").strip())


def _index_of(haystack: Any, needle: Any, start: Any = 0) -> celtypes.IntType:
    if isinstance(haystack, list):
        return celtypes.IntType(next((i for i, item in enumerate(haystack) if item == needle), -1))
    return celtypes.IntType(_str(haystack, "indexOf").find(_str(needle, "indexOf"), int(start)))


def _last_index_of(haystack: Any, needle: Any) -> celtypes.IntType:
    if isinstance(haystack, list):
        hits = [i for i, item in enumerate(haystack) if item == needle]
        return celtypes.IntType(hits[-1] if hits else -1)
    return celtypes.IntType(_str(haystack, "lastIndexOf").rfind(_str(needle, "lastIndexOf")))


def _substring(text: Any, start: Any, end: Any = None) -> celtypes.StringType:
    value = _str(text, "substring")
    first, last = int(start), len(value) if end is None else int(end)
    if not 0 <= first <= last <= len(value):
        raise IndexError(f"index out of range: {first if first < 0 or first > len(value) else last}")
    return celtypes.StringType(value[first:last])


def _char_at(text: Any, index: Any) -> celtypes.StringType:
    value, position = _str(text, "charAt"), int(index)
    if not 0 <= position <= len(value):
        raise IndexError(f"index out of range: {position}")
    return celtypes.StringType(value[position : position + 1])


def _is_sorted(items: Any) -> celtypes.BoolType:
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def _dyn(value: Any) -> Any:
    return value


_EXTENSIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "replace": _replace,
    "split": _split,
    "join": _join,
    "trim": _trim,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
    "charAt": _char_at,
    "isSorted": _is_sorted,
    "dyn": _dyn,
}
_METHODS = frozenset(celpy.base_functions) | frozenset(_EXTENSIONS) | _MACROS


# --------------------------------------------------------------- declarations


def _ident_token(tree: lark.Tree) -> str | None:
    """The variable name if ``tree`` is a bare ``member → primary → ident``, else None."""
    node: Any = tree
    while isinstance(node, lark.Tree) and node.data in (
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
        "member",
        "primary",
    ):
        if len(node.children) != 1:
            return None
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data == "ident" and node.children:
        return str(node.children[0])
    return None


def _check_declared(expression: str, tree: lark.Tree, declared: frozenset[str]) -> None:
    """cel-go refuses undeclared variables and functions at compile time; do the same."""

    def fail(token: Any, detail: str) -> None:
        line = getattr(token, "line", None) or 1
        column = getattr(token, "column", None) or 1
        raise CelCompileError(expression, detail, line, column)

    def visit(node: Any, scope: frozenset[str]) -> None:
        if not isinstance(node, lark.Tree):
            return
        if node.data == "ident":
            name = str(node.children[0])
            if name not in scope and name not in _BUILTIN_NAMES:
                fail(node.children[0], f"undeclared reference to '{name}' (in container '')")
            return
        if node.data == "ident_arg":
            name_token = node.children[0]
            if str(name_token) not in _GLOBAL_FUNCTIONS and str(name_token) not in _EXTENSIONS:
                fail(name_token, f"undeclared reference to '{name_token}' (in container '')")
            for child in node.children[1:]:
                visit(child, scope)
            return
        if node.data == "member_dot_arg":
            target, method = node.children[0], node.children[1]
            args = node.children[2].children if len(node.children) > 2 and node.children[2] is not None else []
            visit(target, scope)
            if str(method) not in _METHODS:
                fail(method, f"undeclared reference to '{method}' (in container '')")
            if str(method) in _MACROS:
                bound = _ident_token(args[0]) if args else None
                if bound is None or len(args) != 2:
                    fail(method, f"invalid argument to {method}() macro")
                for arg in args[1:]:
                    visit(arg, scope | {bound or ""})
                return
            for arg in args:
                visit(arg, scope)
            return
        for child in node.children:
            visit(child, scope)

    visit(tree, declared)


def _referenced(tree: lark.Tree) -> frozenset[str]:
    """Every identifier the expression names (macro-bound ones too): the inputs it may read."""
    return frozenset(
        str(node.children[0]) for node in tree.iter_subtrees() if node.data in ("ident", "dot_ident") and node.children
    )


# ------------------------------------------------------------------ conversion


def _map_to_cel(value: dict[Any, Any]) -> celtypes.MapType:
    return celtypes.MapType({to_cel(k): to_cel(v) for k, v in value.items()})


def _list_to_cel(value: list[Any] | tuple[Any, ...]) -> celtypes.ListType:
    return celtypes.ListType([to_cel(item) for item in value])


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    bool: celtypes.BoolType,
    int: celtypes.IntType,
    float: celtypes.DoubleType,
    str: celtypes.StringType,
    type(None): lambda _: None,
    dict: _map_to_cel,
    list: _list_to_cel,
    tuple: _list_to_cel,
}


def to_cel(value: Any) -> Any:
    """A JSON value as CEL: ``celpy.json_to_cel``'s result, dispatched on the exact type (it is on every write)."""
    converter = _CONVERTERS.get(type(value))
    return converter(value) if converter is not None else celpy.json_to_cel(value)


_MAX_MEMO_INPUT_CHARS = 64 * 1024
"""An input bigger than this as JSON is not remembered by (kept as part of a key)."""
_MAX_OUTCOMES = 512
"""Outcomes remembered, least recently used dropped first: at most ~32 MiB of keys."""
_SCALARS = (bool, int, float, str, type(None))
"""Outcomes kept as they are: immutable, so a hit cannot share state with an earlier caller."""
_OUTCOMES: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], tuple[bool, Any]] = OrderedDict()


def _remember(memo: tuple[str, tuple[tuple[str, str], ...]], outcome: tuple[bool, Any]) -> None:
    _OUTCOMES[memo] = outcome
    while len(_OUTCOMES) > _MAX_OUTCOMES:
        _OUTCOMES.popitem(last=False)


class Activation:
    """An expression's inputs as JSON, each converted to CEL at most once, and only when an expression reads it.

    Several expressions of one policy or one CRD evaluate against the same
    object; converting it per expression (or converting inputs nobody reads)
    was most of the emulated server's CEL cost.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = dict(values)
        self._converted: dict[str, Any] = {}
        self._rendered: dict[str, str | None] = {}

    def __setitem__(self, name: str, value: Any) -> None:
        self._values[name] = value
        self._converted.pop(name, None)
        self._rendered.pop(name, None)

    def key(self, names: frozenset[str]) -> tuple[tuple[str, str], ...] | None:
        """The inputs among ``names`` as canonical JSON text, or None when one is not plain JSON or too big to keep."""
        parts: list[tuple[str, str]] = []
        for name in sorted(names & self._values.keys()):
            if name not in self._rendered:
                try:
                    text: str | None = json.dumps(self._values[name], allow_nan=False)
                except (TypeError, ValueError):
                    text = None
                self._rendered[name] = text if text is not None and len(text) <= _MAX_MEMO_INPUT_CHARS else None
            rendered = self._rendered[name]
            if rendered is None:
                return None
            parts.append((name, rendered))
        return tuple(parts)

    def context(self, names: frozenset[str]) -> dict[str, Any]:
        """The CEL values of those of ``names`` that are inputs."""
        context: dict[str, Any] = {}
        for name in names:
            if name not in self._values:
                continue
            if name not in self._converted:
                self._converted[name] = to_cel(self._values[name])
            context[name] = self._converted[name]
        return context


# -------------------------------------------------------------------- programs


class Program:
    """One compiled expression, evaluated against JSON inputs."""

    def __init__(self, expression: str, runner: celpy.Runner, names: frozenset[str] = frozenset()) -> None:
        self.expression = expression
        self._runner = runner
        self.names = names
        """The identifiers the expression names: no other input can change its value."""

    def evaluate(self, activation: dict[str, Any] | Activation) -> Any:
        """The expression's value on ``activation`` (JSON in, JSON out); :class:`CelEvalError` if it fails.

        CEL is pure (no clock, no I/O), so the same expression on the same
        inputs has the same outcome: scalar outcomes and errors are remembered
        by the JSON text (key order kept) of the inputs it names, in a bounded
        LRU, which spares an unchanged spec's rules on every status write.
        """
        inputs = activation if isinstance(activation, Activation) else Activation(activation)
        key = inputs.key(self.names)
        if key is not None:
            memo = (self.expression, key)
            if memo in _OUTCOMES:
                _OUTCOMES.move_to_end(memo)
                failed, outcome = _OUTCOMES[memo]
                if failed:
                    raise CelEvalError(str(outcome))
                return outcome
        try:
            value = self._evaluate(inputs)
        except CelEvalError as exc:
            if key is not None:
                _remember((self.expression, key), (True, str(exc)))
            raise
        if key is not None and type(value) in _SCALARS:
            _remember((self.expression, key), (False, value))
        return value

    def _evaluate(self, inputs: Activation) -> Any:
        context = inputs.context(self.names)
        try:
            result = self._runner.evaluate(context)
        except celpy.CELEvalError as exc:
            raise CelEvalError(_eval_message(exc)) from exc
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
            raise CelEvalError(str(exc)) from exc
        if isinstance(result, celpy.CELEvalError):
            raise CelEvalError(_eval_message(result))
        return to_json(result)

    def evaluate_bool(self, activation: dict[str, Any] | Activation) -> bool:
        """A validation or match condition: anything but a bool is an error, as cel-go's type check makes it."""
        value = self.evaluate(activation)
        if not isinstance(value, bool):
            raise CelEvalError(f"expression '{self.expression}' resulted in a {type(value).__name__}, not a bool")
        return value

    def evaluate_message(self, activation: dict[str, Any] | Activation) -> str | None:
        """A messageExpression: its string, or None when it fails, is not a one-line string, or is too long."""
        try:
            value = self.evaluate(activation)
        except CelEvalError:
            return None
        if not isinstance(value, str):
            return None
        value = value.strip()
        if not value or "\n" in value or len(value.encode()) > _MAX_MESSAGE_BYTES:
            return None
        return value


def _eval_message(error: celpy.CELEvalError) -> str:
    """celpy's error, worded as cel-go's (which users see in the Status message)."""
    args = error.args
    text = str(args[0]) if args else str(error)
    text = text.split(" (in activation", 1)[0]
    if text.startswith("no such member in mapping: "):
        return "no such key: " + text.removeprefix("no such member in mapping: ").strip("'\"")
    if "divide by zero" in text:
        return "division by zero"
    return text


@functools.lru_cache(maxsize=1024)
def _compile(expression: str, variables: frozenset[str]) -> Program:
    environment = celpy.Environment()
    try:
        tree = environment.compile(expression)
    except celpy.CELParseError as exc:
        line, column = exc.line or 1, exc.column or 1
        lines = expression.splitlines() or [""]
        text = lines[min(line, len(lines)) - 1]
        detail = f"unexpected input at '{text[column - 1]}'" if 0 < column <= len(text) else "unexpected end of input"
        raise CelCompileError(expression, f"Syntax error: {detail}", line, column) from exc
    _check_declared(expression, tree, variables)
    return Program(expression, environment.program(tree, functions=_EXTENSIONS), _referenced(tree))


def compile_expression(expression: str, variables: Iterable[str]) -> Program:
    """Compile ``expression`` with ``variables`` declared; :class:`CelCompileError` if the server would refuse it."""
    if not isinstance(expression, str) or not expression.strip():
        raise CelCompileError(str(expression), "expression is empty")
    return _compile(expression, frozenset(variables))


def to_json(value: Any) -> Any:
    """A CEL value as the JSON value it stands for."""
    if value is None:
        return None
    if isinstance(value, (celtypes.BoolType, bool)):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType, int)):
        return int(value)
    if isinstance(value, (celtypes.DoubleType, float)):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {to_json(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return str(value)

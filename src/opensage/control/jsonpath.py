"""The JSONPath subset of batch transform's `InputFilter` / `OutputFilter` (spec §4.4).

Grammar (what the SageMaker developer guide lists; anything else is refused with the position of
the problem, so a typo fails CreateTransformJob instead of the job):

    path     := "$" step*                       (at most 63 characters)
    step     := "." name | "." "*" | "."? "[" bracket "]"
    bracket  := "*" | quoted ("," quoted)* | item ("," item)*
    item     := int | int? ":" int?             (an index, or a slice)
    quoted   := '...' | "..."                   (a key; no "." inside: no nested paths)

Slices include their end, as the guide documents (`$[1:4]` is the 2nd to 5th element, `$[:5]` the
1st to 6th), unlike Jayway JsonPath. So `$[:-1]` is the whole array and `$[:-2]` drops the last.

Shape of a result. A path is *definite* when every step picks one element (one name or one
index); it yields that element itself, so `$[0]` on a CSV row is one column and `$.features` the
features. A single multi-name step at the end, `$['id','SageMakerOutput']`, is definite too and
yields an object with just those keys, in that order (Jayway's merge, and what the guide's JSON
example needs to stay a record). Any other path (a wildcard, several indexes, a slice, several
names before the end) yields the list of everything it reaches: each step is applied to every
element the previous step reached, in order, so `$[1:]` on a CSV row is a list of columns and
`$.rows[*].id` a list of ids. A selected element that is itself a list stays one element.

Selection is strict where Jayway is lenient: a missing key, an index or slice bound outside the
array, a name on an array, an index on an object, or a wildcard on a scalar is an error naming the
step, because a record that silently loses a column would shift every column after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_LENGTH = 63


class JsonPathError(ValueError):
    """An expression outside the subset, or a step that does not fit the value it meets."""


@dataclass(frozen=True)
class Name:
    key: str


@dataclass(frozen=True)
class Index:
    index: int


@dataclass(frozen=True)
class Slice:
    """`[start:end]`, end included; None is the first (start) or last (end) element."""

    start: int | None
    end: int | None


@dataclass(frozen=True)
class Wildcard:
    pass


Selector = Name | Index | Slice | Wildcard


@dataclass(frozen=True)
class Step:
    """One step as parsed: its selectors, and its text and position for error messages."""

    selectors: tuple[Selector, ...]
    text: str
    position: int

    @property
    def single(self) -> bool:
        """Picks exactly one element: the step keeps a path definite."""
        return len(self.selectors) == 1 and isinstance(self.selectors[0], Name | Index)

    @property
    def merges(self) -> bool:
        """Several names: at the end of a path they build one object."""
        return len(self.selectors) > 1 and all(isinstance(s, Name) for s in self.selectors)


class _Mismatch(Exception):
    """A step that does not fit a value; `select` adds the expression."""

    def __init__(self, step: Step, problem: str) -> None:
        super().__init__(f"step {step.text!r} (character {step.position + 1}): {problem}")


Getter = Callable[[Any], Any]
Expander = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class JsonPath:
    """A compiled expression: `select` runs without re-reading the text (once per record)."""

    expression: str
    steps: tuple[Step, ...]
    definite: bool = field(init=False, compare=False)
    _evaluate: Getter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        definite, evaluate = _plan(self.steps)
        object.__setattr__(self, "definite", definite)
        object.__setattr__(self, "_evaluate", evaluate)

    def select(self, value: Any) -> Any:
        """What the path picks from `value` (see the module docstring for the shape)."""
        try:
            return self._evaluate(value)
        except _Mismatch as exc:
            raise JsonPathError(f"{self.expression!r} {exc}") from None


def compile_path(expression: str) -> JsonPath:
    """Parse `expression`; JsonPathError names the expression and the character at fault."""
    if len(expression) > MAX_LENGTH:
        raise JsonPathError(
            f"JSONPath {expression!r} is {len(expression)} characters long; "
            f"at most {MAX_LENGTH} are allowed"
        )
    return JsonPath(expression, _Parser(expression).parse())


# --- evaluation -------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"


def _resolve(step: Step, index: int, size: int) -> int:
    """`index` counted from the front; negative counts from the end."""
    resolved = index + size if index < 0 else index
    if not 0 <= resolved < size:
        raise _Mismatch(step, f"index {index} is outside the array of {size} elements")
    return resolved


def _name_getter(step: Step, key: str) -> Getter:
    def get(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Mismatch(step, f"a key needs an object, found {_kind(value)}")
        try:
            return value[key]
        except KeyError:
            raise _Mismatch(step, f"no key {key!r} in the object") from None

    return get


def _index_getter(step: Step, index: int) -> Getter:
    def get(value: Any) -> Any:
        if not isinstance(value, list):
            raise _Mismatch(step, f"an index needs an array, found {_kind(value)}")
        try:
            return value[index]
        except IndexError:
            raise _Mismatch(
                step, f"index {index} is outside the array of {len(value)} elements"
            ) from None

    return get


def _slice_expander(step: Step, start: int | None, end: int | None) -> Expander:
    def expand(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _Mismatch(step, f"a slice needs an array, found {_kind(value)}")
        size = len(value)
        low = 0 if start is None else _resolve(step, start, size)
        high = size - 1 if end is None else _resolve(step, end, size)
        if low > high and size:
            raise _Mismatch(step, f"the slice selects nothing from the array of {size} elements")
        return value[low : high + 1]

    return expand


def _wildcard(step: Step) -> Expander:
    def expand(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        raise _Mismatch(step, f"* needs an object or an array, found {_kind(value)}")

    return expand


def _merger(step: Step) -> Getter:
    getters = [(s.key, _name_getter(step, s.key)) for s in step.selectors if isinstance(s, Name)]

    def merge(value: Any) -> Any:
        return {key: get(value) for key, get in getters}

    return merge


def _listed(get: Getter) -> Expander:
    return lambda value: [get(value)]


def _expander(step: Step, last: bool) -> Expander:
    """Every element the step reaches from one value, in order."""
    if step.single or (last and step.merges):
        return _listed(_getter(step))
    parts: list[Expander] = []
    for selector in step.selectors:
        if isinstance(selector, Slice):
            parts.append(_slice_expander(step, selector.start, selector.end))
        elif isinstance(selector, Wildcard):
            parts.append(_wildcard(step))
        else:
            parts.append(_listed(_getter(Step((selector,), step.text, step.position))))
    if len(parts) == 1:
        return parts[0]
    return lambda value: [element for part in parts for element in part(value)]


def _getter(step: Step) -> Getter:
    """The one element a single step picks, or the object a merging step builds."""
    if step.merges:
        return _merger(step)
    selector = step.selectors[0]
    if isinstance(selector, Name):
        return _name_getter(step, selector.key)
    assert isinstance(selector, Index)
    return _index_getter(step, selector.index)


def _plan(steps: tuple[Step, ...]) -> tuple[bool, Getter]:
    """Whether the path is definite, and the function that evaluates it."""
    if not steps:
        return True, lambda value: value
    *head, last = steps
    if all(s.single for s in head) and (last.single or last.merges):
        getters = [_getter(s) for s in steps]
        if len(getters) == 1:
            return True, getters[0]

        def definite(value: Any) -> Any:
            for get in getters:
                value = get(value)
            return value

        return True, definite
    expanders = [_expander(s, i == len(steps) - 1) for i, s in enumerate(steps)]
    if len(expanders) == 1:
        return False, expanders[0]

    def indefinite(value: Any) -> list[Any]:
        nodes = [value]
        for expand in expanders:
            nodes = [element for node in nodes for element in expand(node)]
        return nodes

    return False, indefinite


# --- parsing ----------------------------------------------------------------------------------

_INT = re.compile(r"-?[0-9]+")
# Characters that end a dotted name or have a meaning elsewhere in JSONPath.
_NOT_IN_NAME = frozenset(" \t\r\n'\"[]*,()?@:=<>!&|")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, problem: str, at: int | None = None) -> JsonPathError:
        where = self.pos if at is None else at
        return JsonPathError(f"JSONPath {self.text!r}, character {where + 1}: {problem}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def expect(self, char: str, what: str) -> None:
        found = self.peek()
        if found != char:
            raise self.error(f"expected {what}, found {found!r}" if found else f"missing {what}")
        self.pos += 1

    def parse(self) -> tuple[Step, ...]:
        if not self.text.startswith("$"):
            raise self.error("a path starts with $ (the root), e.g. $ or $[1:] or $.features", 0)
        self.pos = 1
        steps: list[Step] = []
        while self.pos < len(self.text):
            start = self.pos
            selectors = self.step()
            steps.append(Step(selectors, self.text[start : self.pos], start))
        return tuple(steps)

    def step(self) -> tuple[Selector, ...]:
        char = self.peek()
        if char == "[":
            return self.bracket()
        if char != ".":
            raise self.error(f"unexpected {char!r}: a step starts with '.' or '['")
        self.pos += 1
        char = self.peek()
        if char == ".":
            raise self.error("deep scan (..) is not supported", self.pos - 1)
        if char == "*":
            self.pos += 1
            return (Wildcard(),)
        if char == "[":
            return self.bracket()
        return (Name(self.dotted_name()),)

    def dotted_name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ".[":
            if self.text[self.pos] in _NOT_IN_NAME:
                raise self.error(
                    f"{self.text[self.pos]!r} cannot appear in a name"
                    + ("; functions are not supported" if self.text[self.pos] == "(" else "")
                )
            self.pos += 1
        if self.pos == start:
            raise self.error("a name, * or [ must follow '.'")
        return self.text[start : self.pos]

    def bracket(self) -> tuple[Selector, ...]:
        self.expect("[", "'['")
        self.skip_spaces()
        char = self.peek()
        if char == "*":
            self.pos += 1
            selectors: tuple[Selector, ...] = (Wildcard(),)
        elif char in ("'", '"'):
            selectors = self.items(self.quoted)
        elif char == "?":
            raise self.error("filter expressions [?(...)] are not supported")
        elif char == "(":
            raise self.error("script expressions [(...)] are not supported")
        else:
            selectors = self.items(self.index_or_slice)
        self.skip_spaces()
        self.expect("]", "']'")
        return selectors

    def items(self, item: Callable[[], Selector]) -> tuple[Selector, ...]:
        found = [item()]
        self.skip_spaces()
        while self.peek() == ",":
            self.pos += 1
            self.skip_spaces()
            found.append(item())
            self.skip_spaces()
        return tuple(found)

    def quoted(self) -> Selector:
        quote = self.peek()
        if quote not in ("'", '"'):
            raise self.error("expected a quoted name: names and indexes cannot be mixed")
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.error(f"the name opened with {quote} is not closed", start)
            self.pos += 1
            if char == quote:
                break
            if char == "\\" and self.peek() in (quote, "\\"):
                char = self.peek()
                self.pos += 1
            chars.append(char)
        name = "".join(chars)
        if not name:
            raise self.error("empty name", start)
        if "." in name:
            raise self.error(
                f"{name!r}: nested paths inside brackets are not supported; "
                "write each level as its own step",
                start,
            )
        return Name(name)

    def integer(self) -> int | None:
        match = _INT.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return int(match.group())

    def index_or_slice(self) -> Selector:
        start_pos = self.pos
        start = self.integer()
        self.skip_spaces()
        if self.peek() != ":":
            if start is None:
                found = self.peek()
                raise self.error(
                    "expected an index, a slice, a quoted name or *"
                    + (f", found {found!r}" if found else "")
                )
            return Index(start)
        self.pos += 1
        self.skip_spaces()
        end = self.integer()
        self.skip_spaces()
        if self.peek() == ":":
            raise self.error("slice steps ([start:end:step]) are not supported")
        if start is not None and end is not None and (start < 0) == (end < 0) and start > end:
            raise self.error(f"slice [{start}:{end}] starts after its end", start_pos)
        return Slice(start, end)

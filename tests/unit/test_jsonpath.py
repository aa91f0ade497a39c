"""The JSONPath subset of DataProcessing: the guide's examples, the shape rules, strict errors,
and a property test against a reference evaluation written from the documented semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.control.jsonpath import (
    MAX_LENGTH,
    Index,
    JsonPathError,
    Name,
    Selector,
    Slice,
    Wildcard,
    compile_path,
)

ROW = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]
DOC = {"id": 7, "features": [1.5, 2.5, 3.5], "meta": {"a": 1, "b": [True, None]}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$", ROW),
        ("$[0]", "c0"),  # one index: the column itself
        ("$[-1]", "c7"),
        ("$[1:]", ROW[1:]),  # a slice: always a list
        ("$[1:4]", ["c1", "c2", "c3", "c4"]),  # the guide: 2nd to 5th column, end included
        ("$[:5]", ROW[:6]),  # the guide: 1st to 6th column
        ("$[2:]", ROW[2:]),
        ("$[:]", ROW),
        ("$[:-1]", ROW),  # end included: up to the last element
        ("$[:-2]", ROW[:-1]),
        ("$[-3:-2]", ["c5", "c6"]),
        ("$[5:5]", ["c5"]),
        ("$[1,3,5]", ["c1", "c3", "c5"]),  # the guide's index list
        ("$[0,-1]", ["c0", "c7"]),
        ("$[0,5:]", ["c0", "c5", "c6", "c7"]),  # the API reference's OutputFilter example
        ("$[ 0 , 6 : ]", ["c0", "c6", "c7"]),
        ("$[*]", ROW),
        ("$.*", ROW),
    ],
)
def test_csv_row_examples(expression: str, expected: Any) -> None:
    assert compile_path(expression).select(ROW) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$.features", [1.5, 2.5, 3.5]),
        ("$['features']", [1.5, 2.5, 3.5]),
        ('$["features"]', [1.5, 2.5, 3.5]),
        ("$.features[0]", 1.5),
        ("$.features.[0]", 1.5),
        ("$.meta.a", 1),
        ("$.meta.b[1]", None),  # a selected null is a value, not a miss
        ("$.meta.['a','b']", {"a": 1, "b": [True, None]}),  # the guide's dotted bracket form
        ("$['id','features']", {"id": 7, "features": [1.5, 2.5, 3.5]}),  # names merge at the end
        ("$['features','id']", {"features": [1.5, 2.5, 3.5], "id": 7}),  # in the path's order
        ("$.meta['b','b'][1]", [None, None]),  # names not at the end: each one's value, in a list
        ("$['features','meta'].*", [1.5, 2.5, 3.5, 1, [True, None]]),
        ("$.*", [7, [1.5, 2.5, 3.5], {"a": 1, "b": [True, None]}]),
        ("$.meta.*", [1, [True, None]]),
        ("$.features[1:]", [2.5, 3.5]),
        ("$.features[-1:]", [3.5]),
        ("$.meta.b[*]", [True, None]),
    ],
)
def test_json_examples(expression: str, expected: Any) -> None:
    assert compile_path(expression).select(DOC) == expected


def test_the_guides_output_filter_keeps_a_joined_record_an_object() -> None:
    joined = {"id": "a1", "features": [1, 2], "SageMakerOutput": {"label": 1}}
    selected = compile_path("$['id','SageMakerOutput']").select(joined)
    assert selected == {"id": "a1", "SageMakerOutput": {"label": 1}}


def test_merged_names_over_many_elements_give_one_object_each() -> None:
    rows = {"rows": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5}]}
    assert compile_path("$.rows[*]['a','b']").select(rows) == [{"a": 1, "b": 2}, {"a": 4, "b": 5}]


def test_a_selected_list_stays_one_element() -> None:
    assert compile_path("$[0,1]").select([[1, 2], [3]]) == [[1, 2], [3]]
    assert compile_path("$[*][0]").select([[1, 2], [3]]) == [1, 3]


def test_selecting_does_not_hand_back_the_input_list() -> None:
    row = ["a", "b"]
    selected = compile_path("$[*]").select(row)
    selected.append("c")
    assert row == ["a", "b"]


def test_an_empty_array_gives_an_empty_list_to_open_selectors() -> None:
    assert compile_path("$[*]").select([]) == []
    assert compile_path("$[:]").select([]) == []
    assert compile_path("$.*").select({}) == []


def test_quoted_names_take_escapes_and_any_character_but_a_dot() -> None:
    path = compile_path("$['it\\'s','a b','x\\\\y', \"q'\"]")
    assert [s.key for s in path.steps[0].selectors if isinstance(s, Name)] == [
        "it's",
        "a b",
        "x\\y",
        "q'",
    ]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "character 1: a path starts with $"),
        ("features", "character 1: a path starts with $"),
        ("$$", "character 2: unexpected '$'"),
        ("$ .a", "character 2: unexpected ' '"),
        ("$[0]x", "character 5: unexpected 'x'"),
        ("$.", "character 3: a name, * or [ must follow '.'"),
        ("$..id", "character 2: deep scan (..) is not supported"),
        ("$.f.['c1','c2.g']", "character 11: 'c2.g': nested paths inside brackets"),
        ("$['a.b']", "character 3: 'a.b': nested paths"),
        ("$[1:2:3]", "character 6: slice steps"),
        ("$[3:1]", "character 3: slice [3:1] starts after its end"),
        ("$[-1:-3]", "slice [-1:-3] starts after its end"),
        ("$[?(@.a > 1)]", "character 3: filter expressions"),
        ("$[(@.length-1)]", "character 3: script expressions"),
        ("$.length()", "character 9: '(' cannot appear in a name; functions are not supported"),
        ("$.a b", "character 4: ' ' cannot appear in a name"),
        ("$[", "character 3: expected an index, a slice, a quoted name or *"),
        ("$[]", "character 3: expected an index, a slice, a quoted name or *, found ']'"),
        ("$[a]", "found 'a'"),
        ("$[-]", "found '-'"),
        ("$[+1]", "found '+'"),
        ("$[1", "character 4: missing ']'"),
        ("$[1;2]", "character 4: expected ']', found ';'"),
        ("$['a'", "character 6: missing ']'"),
        ("$['a]", "character 3: the name opened with ' is not closed"),
        ("$['']", "character 3: empty name"),
        ("$['a',0]", "character 7: expected a quoted name: names and indexes cannot be mixed"),
        ("$[0,'a']", 'found "\'"'),
        ("$[*,0]", "character 4: expected ']', found ','"),
        ("$[\u0661]", "found '\u0661'"),  # only ASCII digits are an index
    ],
)
def test_expressions_outside_the_subset_are_refused_with_the_position(
    expression: str, fragment: str
) -> None:
    with pytest.raises(JsonPathError) as info:
        compile_path(expression)
    assert repr(expression) in str(info.value)
    assert fragment in str(info.value)


def test_the_length_limit_is_63_characters() -> None:
    longest = "$." + "a" * (MAX_LENGTH - 2)
    assert compile_path(longest).select({"a" * (MAX_LENGTH - 2): 1}) == 1
    with pytest.raises(JsonPathError, match="64 characters long; at most 63 are allowed"):
        compile_path(longest + "b")


@pytest.mark.parametrize(
    ("expression", "value", "fragment"),
    [
        ("$[8]", ROW, "step '[8]' (character 2): index 8 is outside the array of 8 elements"),
        ("$[-9]", ROW, "index -9 is outside the array of 8 elements"),
        ("$[0,9]", ROW, "step '[0,9]' (character 2): index 9 is outside"),
        ("$[2:9]", ROW, "index 9 is outside the array of 8 elements"),
        ("$[9:]", ROW, "index 9 is outside"),
        ("$[:8]", ROW, "index 8 is outside"),  # end included: 8 would be a 9th column
        ("$[-1:0]", ROW, "the slice selects nothing from the array of 8 elements"),
        ("$[0]", [], "index 0 is outside the array of 0 elements"),
        ("$.id", ROW, "step '.id' (character 2): a key needs an object, found an array"),
        ("$[0]", DOC, "an index needs an array, found an object"),
        ("$[1:]", DOC, "a slice needs an array, found an object"),
        ("$.missing", DOC, "no key 'missing' in the object"),
        ("$.features[3]", DOC, "step '[3]' (character 11): index 3 is outside"),
        ("$.id.*", DOC, "step '.*' (character 5): * needs an object or an array, found a number"),
        ("$[0][0]", ROW, "an index needs an array, found a string"),
        ("$.meta.b[0].x", DOC, "a key needs an object, found a boolean"),
        ("$.meta.b[1].x", DOC, "a key needs an object, found null"),
        ("$['id','nope']", DOC, "no key 'nope' in the object"),
        ("$[*].a", [{"a": 1}, {"b": 2}], "no key 'a' in the object"),  # strict in lists too
    ],
)
def test_steps_that_do_not_fit_the_value_are_errors_naming_the_step(
    expression: str, value: Any, fragment: str
) -> None:
    with pytest.raises(JsonPathError) as info:
        compile_path(expression).select(value)
    assert str(info.value).startswith(repr(expression))
    assert fragment in str(info.value)


def test_definite_paths_are_marked() -> None:
    assert compile_path("$").definite
    assert compile_path("$.a[0].b").definite
    assert compile_path("$.a['b','c']").definite
    assert not compile_path("$['b','c'].a").definite
    assert not compile_path("$[0,1]").definite
    assert not compile_path("$[0:0]").definite
    assert not compile_path("$.a.*").definite


def test_paths_compare_by_their_text() -> None:
    assert compile_path("$[1:]") == compile_path("$[1:]")
    assert compile_path("$[1:]") != compile_path("$[1: ]")
    assert len({compile_path("$.a"), compile_path("$.a")}) == 1


# --- property: the parser reads back what a grammar renders; select matches a reference --------

KEYS = ["a", "b", "id", "x_1", "SageMakerOutput", "with space", "it's"]
DOTTABLE = {"a", "b", "id", "x_1", "SageMakerOutput"}
SMALL = st.integers(min_value=-5, max_value=5)

names = st.sampled_from(KEYS).map(Name)
items = st.one_of(
    SMALL.map(Index),
    st.builds(Slice, st.none() | SMALL, st.none() | SMALL),
)
steps: st.SearchStrategy[tuple[Selector, ...]] = st.one_of(
    st.lists(names, min_size=1, max_size=3).map(tuple),
    st.just((Wildcard(),)),
    st.lists(items, min_size=1, max_size=3).map(tuple),
)


@st.composite
def rendered(draw: st.DrawFn, selectors: tuple[Selector, ...]) -> str:
    """One step as text, in any of the spellings the grammar allows."""
    space = draw(st.sampled_from(["", " "]))
    first = selectors[0]
    if isinstance(first, Wildcard):
        return draw(st.sampled_from([".*", "[*]", ".[*]", "[ * ]"]))
    if isinstance(first, Name):
        keys = [s.key for s in selectors if isinstance(s, Name)]
        if len(keys) == 1 and keys[0] in DOTTABLE and draw(st.booleans()):
            return "." + keys[0]
        quote = draw(st.sampled_from(["'", '"']))
        quoted = [
            quote + k.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote for k in keys
        ]
        return draw(st.sampled_from(["", "."])) + "[" + f"{space},{space}".join(quoted) + "]"
    texts = []
    for item in selectors:
        if isinstance(item, Index):
            texts.append(str(item.index))
        else:
            assert isinstance(item, Slice)
            start = "" if item.start is None else str(item.start)
            end = "" if item.end is None else str(item.end)
            texts.append(f"{start}{space}:{space}{end}")
    return "[" + space + ",".join(texts) + space + "]"


@st.composite
def paths(draw: st.DrawFn, min_steps: int = 0) -> tuple[list[tuple[Selector, ...]], str]:
    chosen = draw(st.lists(steps, min_size=min_steps, max_size=4))
    return chosen, "$" + "".join(draw(rendered(s)) for s in chosen)


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.integers(-9, 9) | st.text(max_size=3)
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
        ),
        max_leaves=25,
    )


class Miss(Exception):
    """The reference's error: the step does not fit."""


def refused_at_compile(selectors: tuple[Selector, ...]) -> bool:
    return any(
        isinstance(s, Slice)
        and s.start is not None
        and s.end is not None
        and (s.start < 0) == (s.end < 0)
        and s.start > s.end
        for s in selectors
    )


def position(index: int, size: int) -> int:
    resolved = index + size if index < 0 else index
    if not 0 <= resolved < size:
        raise Miss
    return resolved


def reach(selector: Selector, node: Any) -> list[Any]:
    """Every element one selector reaches from one node."""
    if isinstance(selector, Name):
        if not isinstance(node, dict) or selector.key not in node:
            raise Miss
        return [node[selector.key]]
    if isinstance(selector, Wildcard):
        if isinstance(node, dict):
            return [node[k] for k in node]
        if isinstance(node, list):
            return [node[i] for i in range(len(node))]
        raise Miss
    if not isinstance(node, list):
        raise Miss
    if isinstance(selector, Index):
        return [node[position(selector.index, len(node))]]
    low = 0 if selector.start is None else position(selector.start, len(node))
    high = len(node) - 1 if selector.end is None else position(selector.end, len(node))
    if node and low > high:
        raise Miss
    return [node[i] for i in range(low, high + 1)]  # the end is included


def merging(selectors: tuple[Selector, ...]) -> bool:
    return len(selectors) > 1 and all(isinstance(s, Name) for s in selectors)


def picks_one(selectors: tuple[Selector, ...]) -> bool:
    return len(selectors) == 1 and isinstance(selectors[0], Name | Index)


def reference(chosen: list[tuple[Selector, ...]], value: Any) -> Any:
    nodes = [value]
    for number, selectors in enumerate(chosen):
        last = number == len(chosen) - 1
        if last and merging(selectors):
            nodes = [
                {s.key: reach(s, node)[0] for s in selectors if isinstance(s, Name)}
                for node in nodes
            ]
        else:
            nodes = [element for node in nodes for s in selectors for element in reach(s, node)]
    definite = all(picks_one(s) for s in chosen[:-1]) and (
        not chosen or picks_one(chosen[-1]) or merging(chosen[-1])
    )
    return nodes[0] if definite else nodes


@given(path=paths())
def test_the_parser_reads_back_every_rendering(
    path: tuple[list[tuple[Selector, ...]], str],
) -> None:
    chosen, text = path
    if len(text) > MAX_LENGTH or any(refused_at_compile(s) for s in chosen):
        with pytest.raises(JsonPathError):
            compile_path(text)
        return
    compiled = compile_path(text)
    assert [step.selectors for step in compiled.steps] == chosen
    assert "".join(step.text for step in compiled.steps) == text[1:]


@settings(max_examples=400)
@given(path=paths(min_steps=1), value=json_values())
def test_select_matches_the_reference_semantics(
    path: tuple[list[tuple[Selector, ...]], str], value: Any
) -> None:
    chosen, text = path
    if len(text) > MAX_LENGTH or any(refused_at_compile(s) for s in chosen):
        return
    compiled = compile_path(text)
    try:
        expected = reference(chosen, value)
    except Miss:
        with pytest.raises(JsonPathError):
            compiled.select(value)
        return
    assert compiled.select(value) == expected


@given(
    row=st.lists(st.text(max_size=3), min_size=1, max_size=12),
    start=st.none() | st.integers(-12, 11),
    end=st.none() | st.integers(-12, 11),
)
def test_slices_include_their_end(row: list[str], start: int | None, end: int | None) -> None:
    """Against Python's own (end-excluding) slice: $[s:e] is row[s:e+1] when both exist."""
    text = f"$[{'' if start is None else start}:{'' if end is None else end}]"
    size = len(row)
    bounds = [b for b in (start, end) if b is not None]
    resolved = [b + size if b < 0 else b for b in bounds]
    if any(not 0 <= b < size for b in resolved) or (
        start is not None and end is not None and (start < 0) == (end < 0) and start > end
    ):
        with pytest.raises(JsonPathError):
            compile_path(text).select(row)
        return
    low = 0 if start is None else start % size
    high = size - 1 if end is None else end % size
    if low > high:
        with pytest.raises(JsonPathError, match="selects nothing"):
            compile_path(text).select(row)
        return
    assert compile_path(text).select(row) == row[low : high + 1]

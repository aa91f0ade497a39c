"""Content types: parse `Content-Type` / `Accept` with parameters, and one table of formats.

`text/csv; label_size=1; charset=utf8`, `application/json;verbose=true` and plain
`application/x-recordio-protobuf` are all media types with parameters (RFC 9110): type and
parameter names are case-insensitive, values may be quoted. Built-in algorithms also accept the
bare names XGBoost does (`csv`, `libsvm`) and aliases (`text/x-libsvm`, `application/x-jsonlines`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
RECORDIO = "application/x-recordio"
CSV = "text/csv"
LIBSVM = "text/libsvm"
JSON = "application/json"
JSONLINES = "application/jsonlines"
PARQUET = "application/x-parquet"
IMAGE = "application/x-image"


@dataclass(frozen=True)
class MediaType:
    """A parsed media type: lower-cased `type/subtype`, parameters (names lower-cased)."""

    type: str
    subtype: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def quality(self) -> float:
        """The `q` weight in an Accept list (1 when absent or unreadable)."""
        try:
            return min(1.0, max(0.0, float(self.params.get("q", "1"))))
        except ValueError:
            return 1.0

    def matches(self, other: MediaType) -> bool:
        """Whether this (possibly wildcard) range covers `other`."""
        if self.type == "*":
            return True
        return self.type == other.type and self.subtype in ("*", other.subtype)

    def __str__(self) -> str:
        params = "".join(f";{k}={v}" for k, v in self.params.items())
        return self.essence + params


def _split_params(value: str) -> list[str]:
    """Split on `;` outside double quotes."""
    return _split_outside_quotes(value, ";")


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_media_type(value: str) -> MediaType:
    """Parse one media type; a bare name (`csv`) is resolved through the format table.

    Raises `ValueError` for an empty or malformed string.
    """
    head, *rest = _split_params(value.strip())
    essence = head.strip().lower()
    if not essence:
        raise ValueError(f"empty media type in {value!r}")
    if "/" not in essence:
        fmt = FORMATS_BY_NAME.get(essence)
        if fmt is None:
            raise ValueError(f"not a media type: {value!r}")
        essence = fmt.media_type
    mtype, _, subtype = essence.partition("/")
    if not mtype or not subtype or "/" in subtype:
        raise ValueError(f"not a media type: {value!r}")
    params: dict[str, str] = {}
    for item in rest:
        if not item.strip():
            continue
        name, eq, val = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"bad media type parameter {item!r} in {value!r}")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"')
        params[name.strip().lower()] = val
    return MediaType(mtype.strip(), subtype.strip(), params)


def parse_accept(value: str | None) -> list[MediaType]:
    """An Accept header's media ranges, best first (by q, then specificity, then order);
    `*/*` when absent or empty. Ranges with q=0 are dropped."""
    if value is None or not value.strip():
        return [MediaType("*", "*")]
    ranges = [parse_media_type(part) for part in _split_outside_quotes(value, ",") if part.strip()]

    def rank(item: tuple[int, MediaType]) -> tuple[float, int, int]:
        index, mt = item
        specificity = 0 if mt.type == "*" else 1 if mt.subtype == "*" else 2
        return (-mt.quality, -specificity, index)

    return [mt for _, mt in sorted(enumerate(ranges), key=rank) if mt.quality > 0]


def negotiate(accept: str | None, offered: Sequence[str]) -> str | None:
    """The first of `offered` (in the server's order of preference) that the best Accept range
    covers; None when nothing acceptable is offered. Aliases count as their canonical type."""
    candidates = [(o, canonical(parse_media_type(o))) for o in offered]
    for wanted in parse_accept(accept):
        target = canonical(wanted)
        for original, offer in candidates:
            if target.matches(offer):
                return original
    return None


@dataclass(frozen=True)
class Format:
    """One data format: its canonical media type, aliases, and how batch transform splits it."""

    name: str
    media_type: str
    aliases: tuple[str, ...] = ()
    split_type: str = "None"
    description: str = ""


FORMATS: tuple[Format, ...] = (
    Format("recordio-protobuf", RECORDIO_PROTOBUF, (), "RecordIO", "protobuf Records in RecordIO"),
    Format("recordio", RECORDIO, (), "RecordIO", "MXNet image RecordIO"),
    Format("csv", CSV, ("text/x-csv",), "Line", "label first, no header"),
    Format("libsvm", LIBSVM, ("text/x-libsvm",), "Line", "label[:weight] index:value ..."),
    Format("json", JSON, (), "None", '{"instances": [...]}'),
    Format(
        "jsonlines",
        JSONLINES,
        ("application/x-jsonlines", "application/jsonl"),
        "Line",
        "one JSON value per line",
    ),
    Format("parquet", PARQUET, (), "None", "Apache Parquet"),
    Format("image", IMAGE, ("image/jpeg", "image/png"), "None", "raw image bytes"),
)
FORMATS_BY_NAME = {f.name: f for f in FORMATS}
_BY_TYPE = {t: f for f in FORMATS for t in (f.media_type, *f.aliases)}


def lookup(content_type: str | MediaType | None) -> Format | None:
    """The format a content type (or alias, or bare name) denotes; None if unknown."""
    if content_type is None:
        return None
    mt = content_type if isinstance(content_type, MediaType) else parse_media_type(content_type)
    return _BY_TYPE.get(mt.essence)


def canonical(mt: MediaType) -> MediaType:
    """`mt` with an alias replaced by its format's canonical type (parameters kept)."""
    fmt = _BY_TYPE.get(mt.essence)
    if fmt is None or fmt.media_type == mt.essence or fmt.name == "image":
        return mt
    mtype, _, subtype = fmt.media_type.partition("/")
    return MediaType(mtype, subtype, mt.params)


def label_size(content_type: str | MediaType | None, default: int = 1) -> int:
    """The `label_size` parameter of a CSV content type (`default` when absent)."""
    if content_type is None:
        return default
    mt = content_type if isinstance(content_type, MediaType) else parse_media_type(content_type)
    raw = mt.params.get("label_size")
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        raise ValueError(f"label_size must be an integer, not {raw!r}") from None
    if size < 0:
        raise ValueError(f"label_size must be >= 0, not {size}")
    return size

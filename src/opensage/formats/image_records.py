"""MXNet image RecordIO (`application/x-recordio`, spec training-and-data 2.8) and its companion
`.lst` and `.idx` text files, as `im2rec` writes them for Image Classification and Object
Detection.

    payload := IRHeader label* image
    IRHeader := struct "<IfQQ": flag uint32, label float32, id uint64, id2 uint64   (24 bytes)

`flag` > 0 means that many float32 labels follow the header (and `label` is ignored: MXNet
writes 0 there); `flag` 0 means the one label is `label`. The image bytes (JPEG, PNG) come
last. Records are framed by `opensage.formats.recordio` (dmlc's rule, multi-part records
included), so a `.rec` file here is byte-identical to MXNet's `MXRecordIO` output.

`.lst`: `index<TAB>label[<TAB>label...]<TAB>relative/path` per line. `.idx`: `key<TAB>offset`,
the byte offset of each record's header in the `.rec`.

No image library is imported here: decoding the image bytes is the caller's business.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Final

import numpy as np

from opensage.formats.errors import RecordError
from opensage.formats.recordio import encode_record, split_frames, write_records

IR_HEADER: Final = struct.Struct("<IfQQ")
IR_HEADER_SIZE: Final = IR_HEADER.size  # 24


@dataclass(frozen=True)
class ImageRecord:
    """One image record: its labels (one value, or `flag` values), ids and encoded image.

    `labels` has one value for a record written with `flag` 0 (the header's `label`), else
    exactly `flag` values; `multi` says which (a one-value record written with flag 1 stays
    multi, so it packs back to the same bytes).
    """

    labels: tuple[float, ...]
    image: bytes
    id: int = 0
    id2: int = 0
    multi: bool = False

    @property
    def label(self) -> float:
        """The class id of a single-label record (the first label of a multi-label one)."""
        return self.labels[0] if self.labels else 0.0

    @property
    def flag(self) -> int:
        return len(self.labels) if self.multi else 0


def pack(record: ImageRecord) -> bytes:
    """One record's payload: the IRHeader, the labels when `flag` > 0, then the image."""
    if not record.multi and len(record.labels) != 1:
        raise ValueError("a record with flag 0 has exactly one label; set multi=True for more")
    if record.multi:
        labels = np.asarray(record.labels, dtype="<f4").tobytes()
        header = IR_HEADER.pack(len(record.labels), 0.0, record.id, record.id2)
        return header + labels + bytes(record.image)
    return IR_HEADER.pack(0, record.labels[0], record.id, record.id2) + bytes(record.image)


def unpack(payload: bytes, *, source: str | None = None, index: int | None = None) -> ImageRecord:
    """A payload back as an `ImageRecord`; `RecordError` when it is too short for its header."""
    if len(payload) < IR_HEADER_SIZE:
        raise RecordError(
            f"an image record needs a {IR_HEADER_SIZE}-byte IRHeader; this one has "
            f"{len(payload)} bytes",
            source=source,
            record=index,
        )
    flag, label, rid, rid2 = IR_HEADER.unpack_from(payload)
    if flag == 0:
        return ImageRecord((float(label),), bytes(payload[IR_HEADER_SIZE:]), rid, rid2)
    end = IR_HEADER_SIZE + 4 * flag
    if len(payload) < end:
        raise RecordError(
            f"the IRHeader says {flag} float32 labels follow, but the record has only "
            f"{len(payload) - IR_HEADER_SIZE} bytes after the header",
            source=source,
            record=index,
        )
    labels = np.frombuffer(payload, dtype="<f4", count=flag, offset=IR_HEADER_SIZE)
    return ImageRecord(
        tuple(float(v) for v in labels.tolist()), bytes(payload[end:]), rid, rid2, multi=True
    )


def write_rec(file: BinaryIO, records: Iterable[ImageRecord]) -> list[tuple[int, int]]:
    """Write records as a `.rec` stream; returns each record's `(id, byte offset)` for `.idx`."""
    index: list[tuple[int, int]] = []
    offset = 0
    for record in records:
        index.append((record.id, offset))
        offset += write_records(file, [pack(record)])
    return index


def encode_rec(records: Iterable[ImageRecord]) -> bytes:
    """A whole `.rec` file in memory."""
    return b"".join(encode_record(pack(record)) for record in records)


def read_rec(data: bytes, *, source: str | None = None) -> list[ImageRecord]:
    """Every record of a whole `.rec` buffer; `RecordError` names the broken one."""
    frames = split_frames(data, source=source)
    return [
        unpack(frames.payload(i), source=source, index=frames.first_index + i)
        for i in range(len(frames))
    ]


def iter_rec(data: bytes, *, source: str | None = None) -> Iterator[tuple[int, ImageRecord]]:
    """`(record index, record)` of a whole `.rec` buffer, unpacked one at a time."""
    frames = split_frames(data, source=source)
    for i in range(len(frames)):
        index = frames.first_index + i
        yield index, unpack(frames.payload(i), source=source, index=index)


# --- .idx ---------------------------------------------------------------------------------------


def format_idx(entries: Iterable[tuple[int, int]]) -> str:
    return "".join(f"{key}\t{offset}\n" for key, offset in entries)


def parse_idx(text: str, *, source: str | None = None) -> list[tuple[int, int]]:
    """`key<TAB>offset` lines as pairs; `RecordError` names a bad line."""
    entries: list[tuple[int, int]] = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 2:
                raise ValueError
            entries.append((int(fields[0]), int(fields[1])))
        except ValueError:
            raise RecordError(
                f"an .idx line is 'key<TAB>offset', not {line[:80]!r}", source=source, record=number
            ) from None
    return entries


# --- .lst ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListEntry:
    """One `.lst` line: the image's index, its label column(s) and its path (relative to the
    channel holding the images)."""

    index: int
    labels: tuple[float, ...]
    path: str


def format_lst(entries: Iterable[ListEntry]) -> str:
    lines = []
    for entry in entries:
        labels = "\t".join(_label_text(v) for v in entry.labels)
        lines.append(f"{entry.index}\t{labels}\t{entry.path}\n")
    return "".join(lines)


def _label_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_lst(text: str, *, source: str | None = None) -> list[ListEntry]:
    """Every non-blank line of a `.lst` file. Fields are tab-separated (runs of spaces are
    accepted too, as MXNet's reader splits on any whitespace, when the path has none)."""
    entries: list[ListEntry] = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            fields = line.split()
        entries.append(_lst_entry(fields, line, source, number))
    return entries


def _lst_entry(fields: Sequence[str], line: str, source: str | None, number: int) -> ListEntry:
    if len(fields) < 3:
        raise RecordError(
            f"a .lst line is 'index<TAB>label(s)<TAB>path', not {line[:80]!r}",
            source=source,
            record=number,
        )
    try:
        index = int(float(fields[0]))
        labels = tuple(float(v) for v in fields[1:-1])
    except ValueError:
        raise RecordError(
            f"a .lst line needs a numeric index and labels, not {line[:80]!r}",
            source=source,
            record=number,
        ) from None
    path = fields[-1].strip()
    if not path:
        raise RecordError(
            f"a .lst line has no image path: {line[:80]!r}", source=source, record=number
        )
    return ListEntry(index, labels, path)


def read_lst_file(file: BinaryIO, *, source: str | None = None) -> list[ListEntry]:
    try:
        text = file.read().decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("a .lst file must be utf-8 text", source=source) from None
    return parse_lst(text, source=source)

"""CSV as the built-in algorithms take it (spec training-and-data 2.1, algorithms 1.4).

No header, comma-separated numbers, the first `label_size` columns are the label (1 by default,
0 for unsupervised data: `text/csv;label_size=0`). Read in chunks of whole lines, each chunk parsed
by one numpy call (`np.fromstring` with a separator, C speed); a chunk it cannot parse is re-read
line by line, which finds the broken row and names it with its byte offset.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from opensage.formats.compression import decompressed, is_gzip
from opensage.formats.errors import RecordError

CHUNK_SIZE = 1 << 22
_ROWS_PER_BATCH = 65536

Labels = npt.NDArray[Any] | None


class _Rows:
    """Parses chunks of one stream, knowing the column count from its first row."""

    def __init__(self, label_size: int, source: str | None, dtype: npt.DTypeLike) -> None:
        if label_size < 0:
            raise ValueError("label_size must be >= 0")
        self.label_size = label_size
        self.source = source
        self.dtype = np.dtype(dtype)
        self.columns: int | None = None
        self.line = 0  # index of the chunk's first line in the stream
        self.offset = 0  # byte offset of the chunk in the stream

    def error(self, line: int, offset: int, message: str) -> RecordError:
        return RecordError(
            f"{message} (line {line + 1})", source=self.source, record=line, offset=offset
        )

    def parse(self, chunk: bytes) -> npt.NDArray[Any]:
        """The rows of `chunk` (whole lines) as a 2-D array."""
        if self.columns is None:
            first = chunk.split(b"\n", 1)[0].strip()
            if first:
                self.columns = first.count(b",") + 1
                if self.columns < self.label_size:
                    raise self.error(
                        self.line,
                        self.offset,
                        f"{self.columns} columns, fewer than label_size={self.label_size}",
                    )
        rows = self._fast(chunk)
        if rows is None:
            rows = self._slow(chunk)
        self.line += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
        self.offset += len(chunk)
        return rows

    def _fast(self, chunk: bytes) -> npt.NDArray[Any] | None:
        if self.columns is None or not chunk.strip():
            return None
        try:
            values = np.loadtxt(
                io.BytesIO(chunk), delimiter=",", dtype=np.float64, comments=None, ndmin=2
            )
        except ValueError:
            return None
        if values.shape[1] != self.columns:
            return None
        return values.astype(self.dtype, copy=False)

    def _slow(self, chunk: bytes) -> npt.NDArray[Any]:
        out: list[list[float]] = []
        offset = self.offset
        for i, line in enumerate(chunk.split(b"\n")):
            start = offset
            offset += len(line) + 1
            text = line.strip()
            if not text:
                continue
            cells = text.split(b",")
            if self.columns is None:
                self.columns = len(cells)
                if self.columns < self.label_size:
                    raise self.error(
                        self.line + i,
                        start,
                        f"{self.columns} columns, fewer than label_size={self.label_size}",
                    )
            if len(cells) != self.columns:
                raise self.error(
                    self.line + i, start, f"expected {self.columns} columns, found {len(cells)}"
                )
            row = []
            for j, cell in enumerate(cells):
                try:
                    row.append(float(cell))
                except ValueError:
                    raise self.error(
                        self.line + i,
                        start,
                        f"column {j + 1} is not a number: {cell.decode(errors='replace')!r}",
                    ) from None
            out.append(row)
        if not out:
            return np.empty((0, self.columns or 0), dtype=self.dtype)
        return np.array(out, dtype=np.float64).astype(self.dtype, copy=False)


def _split(rows: npt.NDArray[Any], label_size: int) -> tuple[npt.NDArray[Any], Labels]:
    if label_size == 0:
        return rows, None
    labels = rows[:, :label_size]
    return rows[:, label_size:], labels[:, 0] if label_size == 1 else labels


def read_csv_batches(
    file: BinaryIO,
    *,
    label_size: int = 1,
    source: str | None = None,
    dtype: npt.DTypeLike = np.float32,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[tuple[npt.NDArray[Any], Labels]]:
    """Stream (features, labels) batches of about `chunk_size` bytes of lines; gzip detected.

    Labels are None for `label_size=0`, 1-D for 1, 2-D otherwise.
    """
    path = _plain_file(file)
    if path is not None:
        yield from _file_batches(path, label_size=label_size, source=source, dtype=dtype)
        return
    yield from _stream_batches(file, label_size, source, dtype, chunk_size)


def _plain_file(file: BinaryIO) -> str | None:
    """The path of an uncompressed regular file read from its start: pandas parses a path twice
    as fast as the same bytes through a Python file object."""
    name = getattr(file, "name", None)
    try:
        if not isinstance(name, str) or file.tell() != 0 or not os.path.isfile(name):
            return None
        peek = getattr(file, "peek", None)
        head = bytes(peek(2)[:2]) if peek is not None else b""
    except (OSError, ValueError):
        return None
    return None if len(head) < 2 or is_gzip(head) else name


def read_numbers(
    source: str | BinaryIO, dtype: npt.DTypeLike = np.float64, sep: str = ","
) -> npt.NDArray[Any] | None:
    """All rows by pandas' one-shot C reader, or None for anything it would read loosely or not
    at all: an empty field or short row (NaN), a quoted or non-numeric field, `NA` and friends.

    pandas 3 parses every float exactly (it round-trips) and lets go of the GIL while it works.
    It is asked for no dtype: inferring numeric columns is a fifth faster than converting to
    a given dtype, and only integer and float columns are taken (a boolean column is not a
    number here). A path parses faster than a file object, bytes faster than a StringIO.
    """
    import pandas as pd  # only here: the other readers need no pandas

    try:
        frame = pd.read_csv(
            source,
            header=None,
            sep=sep,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[""],
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if any(kind.kind not in "iuf" for kind in frame.dtypes):
        return None
    with np.errstate(over="ignore"):  # beyond float32's range: infinity, as numpy casts
        rows: npt.NDArray[Any] = frame.to_numpy(dtype=dtype)
    return None if rows.dtype.kind == "f" and np.isnan(rows).any() else rows


def _whole_file(
    path: str | BinaryIO, label_size: int, dtype: npt.DTypeLike
) -> npt.NDArray[Any] | None:
    """The file's rows by `read_numbers`, or None when they need the strict reader."""
    wanted = np.dtype(dtype)
    parse = wanted if wanted in (np.dtype(np.float32), np.dtype(np.float64)) else np.float64
    rows = read_numbers(path, parse)
    if rows is None or rows.ndim != 2 or rows.shape[1] < max(label_size, 1):
        return None
    return rows


def _file_batches(
    path: str, *, label_size: int, source: str | None, dtype: npt.DTypeLike
) -> Iterator[tuple[npt.NDArray[Any], Labels]]:
    """pandas' C reader in chunks of rows; anything it cannot read cleanly (an error, a gap it
    would fill with NaN, a changing width) is re-read by the strict reader, which names the
    broken record, skipping the rows already delivered."""
    import pandas as pd  # only here: the other paths need no pandas

    delivered, columns, clean = 0, None, False
    try:
        with pd.read_csv(path, header=None, dtype=np.float64, chunksize=_ROWS_PER_BATCH) as reader:
            for frame in reader:
                rows: npt.NDArray[np.float64] = frame.to_numpy(dtype=np.float64)
                columns = columns or rows.shape[1]
                if rows.shape[1] != columns or columns < label_size or np.isnan(rows).any():
                    break
                yield _split(rows.astype(dtype, copy=False), label_size)
                delivered += len(rows)
            else:
                clean = True
    except pd.errors.EmptyDataError:
        return
    except (ValueError, pd.errors.ParserError):
        pass
    if clean:
        return
    with open(path, "rb") as f:
        for features, labels in _stream_batches(f, label_size, source, dtype, CHUNK_SIZE):
            skip = min(delivered, len(features))
            delivered -= skip
            if skip < len(features):
                yield features[skip:], None if labels is None else labels[skip:]


def _stream_batches(
    file: BinaryIO,
    label_size: int,
    source: str | None,
    dtype: npt.DTypeLike,
    chunk_size: int,
) -> Iterator[tuple[npt.NDArray[Any], Labels]]:
    parser = _Rows(label_size, source, dtype)
    stream = decompressed(file)
    pending = b""
    while True:
        data = stream.read(chunk_size)
        if not data:
            if pending:
                yield _split(parser.parse(pending), label_size)
            return
        buf = pending + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            pending = buf
            continue
        pending = buf[cut:]
        rows = parser.parse(buf[:cut])
        if len(rows):
            yield _split(rows, label_size)


def read_csv(
    data: bytes | BinaryIO,
    *,
    label_size: int = 1,
    source: str | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> tuple[npt.NDArray[Any], Labels]:
    """The whole CSV at once: (features, labels)."""
    stream: BinaryIO = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray) else data
    path = _plain_file(stream)
    whole = _whole_file(path, label_size, dtype) if path is not None else None
    if isinstance(data, bytes | bytearray) and len(data) > 1 and not is_gzip(bytes(data[:2])):
        whole = _whole_file(stream, label_size, dtype)  # a request body: pandas too, from memory
        stream.seek(0)
    if whole is not None:  # pandas' one-shot reader: its chunked mode is half as fast
        return _split(whole.astype(dtype, copy=False), label_size)
    parts = list(read_csv_batches(stream, label_size=label_size, source=source, dtype=dtype))
    if not parts:
        return np.empty((0, 0), dtype=dtype), None if label_size == 0 else np.empty(0, dtype)
    features = np.concatenate([f for f, _ in parts]) if len(parts) > 1 else parts[0][0]
    if label_size == 0:
        return features, None
    labels = [lab for _, lab in parts if lab is not None]
    return features, np.concatenate(labels) if len(labels) > 1 else labels[0]


def _format(values: npt.NDArray[Any]) -> list[list[str]]:
    if values.dtype.kind in "iub":
        return [[str(v) for v in row] for row in values.tolist()]
    if values.dtype == np.float64:
        return [[repr(v) for v in row] for row in values.tolist()]
    # float32 and smaller: 9 significant digits read back to the same float32.
    return [[f"{v:.9g}" for v in row] for row in values.astype(np.float64).tolist()]


def encode_csv(features: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> bytes:
    """CSV rows, label column(s) first, no header."""
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise ValueError("features must be 2-D")
    cells = _format(arr)
    if labels is not None:
        lab = np.asarray(labels)
        lab = lab.reshape(len(lab), -1)
        if len(lab) != len(arr):
            raise ValueError(f"{len(lab)} labels for {len(arr)} rows")
        cells = [a + b for a, b in zip(_format(lab), cells, strict=True)]
    return "".join(",".join(row) + "\n" for row in cells).encode()


def write_csv(file: BinaryIO, features: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> None:
    """Write CSV rows, label column(s) first, no header."""
    file.write(encode_csv(features, labels))

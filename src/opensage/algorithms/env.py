"""What a built-in's `train(env)` gets: typed hyperparameters, the hosts, and its channels ready
to read in batches, in File or Pipe mode, as CSV or RecordIO-protobuf.

A channel with no content type is RecordIO-protobuf (what the SDK's `record_set` uploads);
CSV takes its label columns from `label_size` (`text/csv;label_size=0` for unsupervised data),
or from the algorithm's default for that channel. Pipe mode reads epoch `e` from the FIFO
`<channel>_<e>`; File mode reads the channel's files again for every epoch. A malformed record
becomes a `UserError` naming the channel, the file and the record, which the runner writes as the
job's `FailureReason`.

Reading imports numpy and the formats lazily, so a job with a bad configuration fails before
paying for them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from opensage.algorithms.base import CSV, Algorithm, ChannelSpec, UserError, Value
from opensage.algorithms.logs import MetricsLog
from opensage.contract import MLPaths

if TYPE_CHECKING:
    from opensage.formats.errors import RecordError

MAX_FOLDER_DEPTH: Final = 3
"""Files are read from the channel folder and up to three levels of sub-folders."""
PIPE_WAIT_SECONDS: Final = 60.0


def data_files(folder: Path, depth: int = 0) -> list[Path]:
    """Non-empty data files under `folder`, sorted, skipping hidden (`.x`) and `_x` names."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir() and depth < MAX_FOLDER_DEPTH:
            found.extend(data_files(entry, depth + 1))
        elif entry.is_file() and entry.stat().st_size > 0:
            found.append(entry)
    return found


def describe_record_error(exc: RecordError) -> str:
    """`record 3 at byte 120: <problem>`, without the file (the caller names it)."""
    where = " ".join(
        part
        for part in (
            f"record {exc.record}" if exc.record is not None else "",
            f"at byte {exc.offset}" if exc.offset is not None else "",
        )
        if part
    )
    return f"{where}: {exc.message}" if where else exc.message


@dataclass
class Batch:
    """Rows of one channel: float32 features (2-D array, or CSR for sparse records) and labels
    (1-D float32, or None for unlabelled data)."""

    features: Any
    labels: Any = None

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    @property
    def width(self) -> int:
        return int(self.features.shape[1])

    def dense(self) -> Any:
        """The features as a dense float32 array (sparse records filled with zeros)."""
        import numpy as np
        import scipy.sparse as sp

        if sp.issparse(self.features):
            return np.asarray(self.features.toarray(), dtype=np.float32)
        return np.asarray(self.features, dtype=np.float32)


@dataclass
class ChannelReader:
    """One input channel, read as batches of rows."""

    name: str
    folder: Path
    data_dir: Path
    content_type: str
    label_size: int
    pipe: bool

    @property
    def is_csv(self) -> bool:
        return self.content_type == CSV

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """The channel's rows once, in the chunks the readers produce."""
        if self.pipe:
            fifo = self._wait_for_fifo(epoch)
            with fifo.open("rb") as stream:
                yield from self._read(stream, f"{self.name}_{epoch}")
            return
        files = data_files(self.folder) if self.folder.is_dir() else []
        for path in files:
            with path.open("rb") as stream:
                yield from self._read(stream, str(path.relative_to(self.folder)))

    def batches(self, size: int, epoch: int = 0) -> Iterator[Batch]:
        """The rows of one epoch in batches of exactly `size` (the last may be smaller)."""
        pending: list[Batch] = []
        held = 0
        for chunk in self.epoch(epoch):
            pending.append(chunk)
            held += chunk.n
            if held < size:
                continue
            joined = concat(pending)
            cut = joined.n - joined.n % size
            for start in range(0, cut, size):
                yield slice_rows(joined, start, start + size)
            rest = slice_rows(joined, cut, joined.n)
            pending, held = ([rest], rest.n) if rest.n else ([], 0)
        if held:
            yield concat(pending)

    def read_all(self) -> Batch:
        """Every row of epoch 0 in one batch; `UserError` if the channel holds none."""
        parts = list(self.epoch(0))
        if not parts or sum(part.n for part in parts) == 0:
            raise UserError(f"No data in channel '{self.name}': its files hold no records.")
        return concat(parts)

    def _read(self, stream: BinaryIO, source: str) -> Iterator[Batch]:
        from opensage.formats.errors import RecordError

        try:
            yield from self._parse(stream)
        except RecordError as exc:
            raise UserError(
                f"Could not read file '{source}' of channel '{self.name}': "
                f"{describe_record_error(exc)}"
            ) from None

    def _parse(self, stream: BinaryIO) -> Iterator[Batch]:
        import numpy as np
        import scipy.sparse as sp

        if self.is_csv:
            from opensage.formats.csv import read_csv_batches

            for features, labels in read_csv_batches(
                stream, label_size=self.label_size, dtype=np.float32
            ):
                yield Batch(features, _label_column(labels))
            return
        from opensage.formats.tensors import read_batches

        for features, labels in read_batches(stream):
            if not sp.issparse(features):
                features = np.asarray(features, dtype=np.float32)
            elif features.dtype != np.float32:
                features = features.astype(np.float32)
            yield Batch(features, _label_column(labels))

    def _wait_for_fifo(self, epoch: int) -> Path:
        fifo = self.data_dir / f"{self.name}_{epoch}"
        deadline = time.monotonic() + PIPE_WAIT_SECONDS
        while not fifo.exists():
            if time.monotonic() > deadline:
                raise UserError(f"Channel '{self.name}' is in Pipe mode but {fifo} never appeared.")
            time.sleep(0.02)  # the platform creates the FIFO; there is nothing to wait on
        return fifo


def _label_column(labels: Any) -> Any:
    """Scalar labels as a 1-D float32 array; a label of several values keeps its 2-D shape."""
    import numpy as np

    if labels is None:
        return None
    array = np.asarray(labels, dtype=np.float32)
    return array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array


def concat(parts: list[Batch]) -> Batch:
    """Batches stacked (CSR if any is sparse; widths of sparse parts padded to the widest)."""
    import numpy as np
    import scipy.sparse as sp

    if len(parts) == 1:
        return parts[0]
    labelled = [part.labels is not None for part in parts]
    if any(labelled) and not all(labelled):
        raise UserError("Some records have a label and others do not; label every record.")
    labels = np.concatenate([part.labels for part in parts]) if all(labelled) else None
    if any(sp.issparse(part.features) for part in parts):
        width = max(part.width for part in parts)
        matrices = [sp.csr_matrix(part.features) for part in parts]
        matrices = [
            sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
            for m in matrices
        ]
        return Batch(sp.vstack(matrices, format="csr"), labels)
    widths = {part.width for part in parts}
    if len(widths) > 1:
        raise UserError(
            f"Records have different numbers of features ({', '.join(map(str, sorted(widths)))});"
            " every record needs the same features."
        )
    return Batch(np.concatenate([part.features for part in parts]), labels)


CACHE_BYTES: Final = 1 << 30
"""How much of a channel `Passes` keeps in memory after its first pass."""


class Passes:
    """A channel read in checked blocks, once per pass (an epoch, or a pass of a multi-pass
    method). The first pass keeps its blocks while they fit in `CACHE_BYTES`, so small data is
    parsed once; larger data is re-read from the files (File mode) or from the next epoch's FIFO
    (Pipe mode), never held whole. Subclasses say how a block is checked and converted."""

    def __init__(self, reader: ChannelReader, block_rows: int, keep: bool = True) -> None:
        self.reader = reader
        self.block_rows = block_rows
        self.keep = keep
        self.cache: list[Any] | None = None

    def check(self, features: Any, before: int) -> Any:
        """The block to use for `features`, whose first row is the channel's row `before`;
        raise `UserError` for data the algorithm cannot take."""
        return features

    def epoch(self, index: int) -> Iterator[Any]:
        """Pass `index` over the blocks: from memory once a pass was kept whole."""
        if self.cache is not None:
            yield from self.cache
            return
        kept: list[Any] | None = [] if index == 0 and self.keep else None
        held = 0
        rows = 0
        for batch in self.reader.batches(self.block_rows, index):
            block = self.check(batch.features, rows)
            rows += batch.n
            if kept is not None:
                held += _nbytes(block)
                kept = kept if held <= CACHE_BYTES else None
                if kept is not None:
                    kept.append(block)
            yield block
        if rows == 0:
            raise UserError(f"No data in channel '{self.reader.name}': its files hold no records.")
        self.cache = kept


def _nbytes(block: Any) -> int:
    import scipy.sparse as sp

    if sp.issparse(block):
        return int(block.data.nbytes + block.indices.nbytes + block.indptr.nbytes)
    return int(block.nbytes)


def slice_rows(batch: Batch, start: int, stop: int) -> Batch:
    labels = None if batch.labels is None else batch.labels[start:stop]
    return Batch(batch.features[start:stop], labels)


@dataclass
class TrainingEnv:
    """The job as a built-in sees it."""

    paths: MLPaths
    algorithm: Algorithm
    hyperparameters: dict[str, Value]
    given: frozenset[str]
    current_host: str = "algo-1"
    hosts: list[str] = field(default_factory=lambda: ["algo-1"])
    channels: dict[str, ChannelReader] = field(default_factory=dict)
    log: MetricsLog = field(default_factory=MetricsLog)

    @classmethod
    def load(cls, paths: MLPaths, algorithm: Algorithm) -> TrainingEnv:
        """Validate the hyperparameters and channels against `algorithm`; UserError or
        HyperparameterError for whatever the user must change."""
        raw = paths.hyperparameters()
        values = algorithm.hyperparameters.resolved(raw)
        given = frozenset(algorithm.hyperparameters.validate(raw))
        resources = paths.resource_config()
        host = str(resources.get("current_host") or "algo-1")
        hosts = [str(h) for h in resources.get("hosts") or [host]]
        channels = _channels(paths, algorithm)
        return cls(paths, algorithm, values, given, host, hosts, channels, MetricsLog(host))

    def __getitem__(self, name: str) -> Any:
        return self.hyperparameters[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.hyperparameters.get(name, default)

    def channel(self, name: str) -> ChannelReader | None:
        return self.channels.get(name)

    @property
    def model_dir(self) -> Path:
        self.paths.model.mkdir(parents=True, exist_ok=True)
        return self.paths.model


def _channels(paths: MLPaths, algorithm: Algorithm) -> dict[str, ChannelReader]:
    config = paths.input_data_config()
    present = set(config) | {
        spec.name for spec in algorithm.channels if paths.channel(spec.name).is_dir()
    }
    for required in algorithm.channels:
        if required.required and required.name not in present:
            names = ", ".join(f"'{c.name}'" for c in algorithm.channels)
            raise UserError(
                f"Channel '{required.name}' is required: the {algorithm.title} algorithm reads the "
                f"channels {names}."
            )
    readers = {}
    for name in sorted(present):
        spec = algorithm.channel(name)
        if spec is None:
            known = ", ".join(f"'{c.name}'" for c in algorithm.channels)
            raise UserError(
                f"Channel '{name}' is not one the {algorithm.title} algorithm reads; its channels "
                f"are {known}."
            )
        readers[name] = _reader(paths, algorithm, spec, config.get(name, {}))
    return readers


def _reader(
    paths: MLPaths, algorithm: Algorithm, spec: ChannelSpec, config: dict[str, str]
) -> ChannelReader:
    from opensage.formats.content_types import canonical, label_size, parse_media_type

    raw_type = config.get("ContentType") or algorithm.default_content_type
    try:
        media = canonical(parse_media_type(raw_type))
    except ValueError:
        media = None
    if media is None or media.essence not in spec.content_types:
        raise UserError(
            f"Content type '{raw_type}' of channel '{spec.name}' is not accepted by the "
            f"{algorithm.title} algorithm; use one of: {', '.join(spec.content_types)}."
        )
    mode = str(config.get("TrainingInputMode", "File")).lower()
    if mode == "pipe" and not algorithm.supports_pipe:
        raise UserError(f"The {algorithm.title} algorithm does not read channels in Pipe mode.")
    try:
        labels = label_size(media, spec.csv_label_size) if media.essence == CSV else 0
    except ValueError as exc:
        raise UserError(f"Content type '{raw_type}' of channel '{spec.name}': {exc}") from None
    return ChannelReader(
        name=spec.name,
        folder=paths.channel(spec.name),
        data_dir=paths.data,
        content_type=media.essence,
        label_size=labels,
        pipe=mode == "pipe",
    )

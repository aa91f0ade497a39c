"""The one error every reader raises for malformed input.

A training job turns this error into its `FailureReason`, so the message must tell the user where
their data is broken: which file (or channel/file), which record, and at which byte.
"""

from __future__ import annotations


class RecordError(ValueError):
    """Malformed input data: a broken frame, a bad protobuf, a wrong CSV row, bad JSON.

    `source` names the file (the runtime may prefix the channel, e.g. `train/part-0.pbr`),
    `record` is the 0-based index of the record (row, line) and `offset` the byte offset of its
    start in the (decompressed) stream. Any of them may be unknown (`None`).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        record: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.record = record
        self.offset = offset

    def __str__(self) -> str:
        where = []
        if self.record is not None:
            where.append(f"record {self.record}")
        if self.offset is not None:
            where.append(f"at byte {self.offset}")
        parts = [p for p in (self.source, " ".join(where)) if p]
        return ": ".join([*parts, self.message])

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling (multiprocessing).
        return (_rebuild, (self.message, self.source, self.record, self.offset))

    def with_source(self, source: str) -> RecordError:
        """The same error, naming `source` (e.g. `train/part-0.pbr`) instead of what it had."""
        return RecordError(self.message, source=source, record=self.record, offset=self.offset)


def _rebuild(
    message: str, source: str | None, record: int | None, offset: int | None
) -> RecordError:
    return RecordError(message, source=source, record=record, offset=offset)

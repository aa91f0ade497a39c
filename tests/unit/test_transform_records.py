"""Batch transform's data path: splitting objects into records, packing requests, assembling."""

from __future__ import annotations

import gzip
import io
import itertools
import pickle
import struct
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensage.control.transform_records import (
    CHUNK_SIZE,
    SPLIT_TYPES,
    MiniBatch,
    RecordTooLarge,
    SplitError,
    assembled,
    crc32c,
    iter_records,
    masked_crc32c,
    mini_batches,
    object_batches,
    open_object,
    payload,
)
from opensage.formats.recordio import MAGIC, MAGIC_BYTES, encode_record, read_all_records

Case = tuple[str, tuple[list[bytes], list[bytes]]]


def tfrecord(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    crcs = struct.pack("<I", masked_crc32c(length)), struct.pack("<I", masked_crc32c(data))
    return b"".join((length, crcs[0], data, crcs[1]))


def recordio_frame(flag: int, data: bytes) -> bytes:
    return struct.pack("<II", MAGIC, flag << 29 | len(data)) + data + bytes(-len(data) & 3)


def split(data: bytes, split_type: str, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    return list(iter_records(io.BytesIO(data), split_type, chunk_size))


def until_error(items: Iterator[object]) -> tuple[list[object], SplitError | None]:
    """What a consumer got before the split failed, and the failure."""
    got: list[object] = []
    try:
        for item in items:
            got.append(item)
    except SplitError as exc:
        return got, exc
    return got, None


def split_error(data: bytes, split_type: str, chunk_size: int = CHUNK_SIZE) -> SplitError:
    with pytest.raises(SplitError) as info:
        split(data, split_type, chunk_size)
    return info.value


CHUNKS = st.sampled_from([1, 3, 7, 64, CHUNK_SIZE]) | st.integers(1, 40)
LINE = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))
PAYLOAD = st.binary(max_size=40)
# Aligned magic words inside a payload make dmlc's writer cut it into a multi-part record.
MULTIPART = st.lists(
    st.binary(max_size=12).map(lambda b: b + bytes(-len(b) & 3)), min_size=2, max_size=4
).map(MAGIC_BYTES.join)


@st.composite
def objects(draw: st.DrawFn, split_type: str, min_size: int = 0) -> tuple[list[bytes], list[bytes]]:
    """An object's records as framed in it, and their payloads."""
    if split_type == "Line":
        records = [line + b"\n" for line in draw(st.lists(LINE, min_size=min_size, max_size=20))]
        last = draw(LINE)  # a last line without its newline
        records += [last] if last else []
        return records, records
    if split_type == "RecordIO":
        payloads = draw(st.lists(PAYLOAD | MULTIPART, min_size=min_size, max_size=12))
        return [encode_record(p, split_magic=True) for p in payloads], payloads
    if split_type == "TFRecord":
        payloads = draw(st.lists(PAYLOAD, min_size=min_size, max_size=12))
        return [tfrecord(p) for p in payloads], payloads
    data = draw(st.binary(min_size=min_size, max_size=100))
    return ([data], [data]) if data else ([], [])


ANY = st.sampled_from(SPLIT_TYPES).flatmap(lambda t: st.tuples(st.just(t), objects(t)))
FRAMED = st.sampled_from(["RecordIO", "TFRecord"]).flatmap(
    lambda t: st.tuples(st.just(t), objects(t, min_size=1))
)


# --- splitting ---------------------------------------------------------------------------------


@settings(deadline=None)
@given(case=ANY, chunk_size=CHUNKS, compressed=st.booleans())
def test_split_gives_back_the_records_and_their_payloads(
    case: Case, chunk_size: int, compressed: bool
) -> None:
    split_type, (records, payloads) = case
    data = b"".join(records)
    raw = io.BytesIO(gzip.compress(data) if compressed else data)
    stream = open_object(raw, "Gzip" if compressed else "None")
    got = list(iter_records(stream, split_type, chunk_size))
    assert got == records
    assert [payload(r, split_type) for r in got] == payloads


@given(objects("RecordIO"))
def test_recordio_payloads_match_the_training_reader(obj: tuple[list[bytes], list[bytes]]) -> None:
    """Multi-part records come back whole, with the magic words the writer cut at put back."""
    data = b"".join(obj[0])
    assert [payload(r, "RecordIO") for r in split(data, "RecordIO")] == read_all_records(data)


def test_lines_keep_their_newline_and_carriage_return() -> None:
    assert split(b"a,1\r\nb,2\rc\n\nlast", "Line", 2) == [b"a,1\r\n", b"b,2\rc\n", b"\n", b"last"]
    assert split(b"", "Line") == []
    assert split(b"\n", "Line") == [b"\n"]


def test_none_is_the_whole_object() -> None:
    assert split(b"a\nb\n", "None", 1) == [b"a\nb\n"]
    assert split(b"", "None") == []


def test_recordio_forgives_a_missing_pad_only_at_the_very_end() -> None:
    whole = encode_record(b"abcde")  # 8 + 5 + 3 zero bytes
    assert split(whole[:-2], "RecordIO") == [whole[:-2]]
    assert payload(whole[:-2], "RecordIO") == b"abcde"
    error = split_error(whole[:-2] + whole, "RecordIO")
    assert (error.record, error.offset) == (2, 16)  # where the first record's pad would end
    assert "bad magic" in str(error)


def test_a_bad_recordio_magic_names_the_record_and_byte() -> None:
    good = encode_record(b"one") + encode_record(b"two!")
    error = split_error(good + b"\x00" * 16, "RecordIO", 5)
    assert (error.record, error.offset) == (3, len(good))
    assert str(error) == (
        f"RecordIO record 3 at byte {len(good)}: bad magic 0x00000000 (expected 0xced7230a)"
    )


@pytest.mark.parametrize(
    ("frames", "record", "offset", "message"),
    [
        ([(2, b"ab")], 1, 0, "continuation part (flag 2) without a first"),
        ([(0, b"ab"), (3, b"cd")], 2, 12, "continuation part (flag 3) without a first"),
        ([(1, b"ab"), (0, b"cd")], 1, 12, "record ends without its last part (flag 3)"),
        ([(1, b"ab"), (2, b"cd")], 1, 24, "truncated header, 0 of 8 bytes"),
        ([(5, b"ab")], 1, 0, "bad continuation flag 5 (0 to 3 allowed)"),
    ],
)
def test_broken_multipart_records(
    frames: list[tuple[int, bytes]], record: int, offset: int, message: str
) -> None:
    data = b"".join(recordio_frame(flag, part) for flag, part in frames)
    error = split_error(data, "RecordIO")
    assert (error.record, error.offset) == (record, offset)
    assert str(error) == f"RecordIO record {record} at byte {offset}: {message}"


def test_truncated_frames_say_how_much_is_missing() -> None:
    assert str(split_error(encode_record(b"x" * 10)[:12], "RecordIO")) == (
        "RecordIO record 1 at byte 0: truncated: header says 10 bytes, 4 remain"
    )
    assert str(split_error(tfrecord(b"abc")[:5], "TFRecord")) == (
        "TFRecord record 1 at byte 0: truncated header, 5 of 12 bytes"
    )
    assert str(split_error(tfrecord(b"x") + tfrecord(b"abc")[:-1], "TFRecord", 4)) == (
        "TFRecord record 2 at byte 17: truncated: header says 3+4 bytes, 6 remain"
    )


@settings(deadline=None)
@given(case=FRAMED, data=st.data(), chunk_size=CHUNKS)
def test_a_truncated_object_names_the_record_it_cuts(
    case: Case, data: st.DataObject, chunk_size: int
) -> None:
    split_type, (records, payloads) = case
    i = data.draw(st.integers(0, len(records) - 1))
    start = sum(map(len, records[:i]))
    cut = data.draw(st.integers(start + 1, start + len(records[i]) - 1))
    whole = b"".join(records)
    got, error = until_error(iter_records(io.BytesIO(whole[:cut]), split_type, chunk_size))
    assert got[:i] == records[:i]
    if error is None:  # only a RecordIO record missing some of its final padding
        assert split_type == "RecordIO"
        assert got == [*records[:i], whole[start:cut]]
        assert payload(whole[start:cut], "RecordIO") == payloads[i]
    else:
        assert len(got) == i
        assert error.record == i + 1
        assert error.offset is not None
        assert start <= error.offset <= cut  # a missing frame of a multi-part record: at cut
        assert f"{split_type} record {i + 1} at byte {error.offset}: truncated" in str(error)


@given(payloads=st.lists(PAYLOAD, min_size=1, max_size=6), data=st.data(), chunk_size=CHUNKS)
def test_a_bad_tfrecord_length_crc_names_the_record(
    payloads: list[bytes], data: st.DataObject, chunk_size: int
) -> None:
    records = [tfrecord(p) for p in payloads]
    i = data.draw(st.integers(0, len(records) - 1))
    start = sum(map(len, records[:i]))
    bit = data.draw(st.integers(0, 12 * 8 - 1))  # in the length or in its CRC
    corrupt = bytearray(b"".join(records))
    corrupt[start + bit // 8] ^= 1 << bit % 8
    got, error = until_error(iter_records(io.BytesIO(bytes(corrupt)), "TFRecord", chunk_size))
    assert got == records[:i]
    assert error is not None
    assert (error.record, error.offset) == (i + 1, start)
    assert str(error).startswith(f"TFRecord record {i + 1} at byte {start}: bad length CRC")


def test_the_payload_crc_is_not_checked() -> None:
    record = tfrecord(b"payload")
    corrupt = record[:-4] + b"\x00\x00\x00\x00"
    assert split(corrupt, "TFRecord") == [corrupt]


def test_crc32c_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert masked_crc32c(b"1234567890asdfghjkl") == 4134599430


# --- gzip --------------------------------------------------------------------------------------


def test_gzip_members_are_read_in_turn() -> None:
    data = gzip.compress(b"a\nb\n") + gzip.compress(b"c\n")
    assert split(open_object(io.BytesIO(data), "Gzip").read(), "Line") == [b"a\n", b"b\n", b"c\n"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (gzip.compress(b"x\n" * 1000, mtime=0)[:-9], "ended before the end-of-stream marker"),
        (b"x,1\ny,2\n", "Not a gzipped file"),
        (gzip.compress(b"x\n" * 1000, mtime=0)[:10] + b"\xff" * 20, "while decompressing data"),
        (gzip.compress(b"x\n", mtime=0)[:-8] + b"\x00" * 8, "CRC check failed"),
    ],
    ids=["truncated", "not-gzip", "corrupt", "bad-crc"],  # the same on every xdist worker
)
def test_bad_gzip_is_a_split_error(data: bytes, reason: str) -> None:
    stream = open_object(io.BytesIO(data), "Gzip")  # nothing is read yet
    with pytest.raises(SplitError, match=r"^Cannot gunzip the object \(CompressionType is Gzip\)"):
        list(iter_records(stream, "Line", 3))
    with pytest.raises(SplitError, match=reason) as info:
        open_object(io.BytesIO(data), "Gzip").read()
    assert info.value.__cause__ is not None


def test_gzip_errors_say_how_far_they_got() -> None:
    data = gzip.compress(bytes(range(256)) * 4000)
    stream = open_object(io.BytesIO(data[: len(data) // 2]), "Gzip")
    read, error = until_error(iter(lambda: stream.read(1000), b""))
    assert error is not None
    assert error.offset is not None
    assert 0 < 1000 * len(read) <= error.offset  # what was read, and what the buffer holds
    assert f"after {error.offset} bytes of output" in str(error)


# --- mini-batches ------------------------------------------------------------------------------


def both_ways(
    records: list[bytes], split_type: str, strategy: str, limit: int | None, chunk_size: int
) -> tuple[list[MiniBatch], SplitError | None]:
    """The batches (and failure) from records, checked to be those straight from the stream."""
    batches, error = until_error(
        mini_batches(records, split_type, strategy, limit, keep_records=True)
    )
    for size in (3, chunk_size):
        stream = io.BytesIO(b"".join(records))
        direct = object_batches(
            stream, split_type, strategy, limit, keep_records=True, chunk_size=size
        )
        other, other_error = until_error(direct)
        assert other == batches
        assert repr(other_error) == repr(error)
    return cast(list[MiniBatch], batches), error


def first_oversize(sizes: list[int], limit: int | None) -> int | None:
    return next((i for i, n in enumerate(sizes) if limit is not None and n > limit), None)


def check_too_large(
    error: SplitError | None, records: list[bytes], oversize: int | None, size: int
) -> None:
    if oversize is None:
        assert error is None
        return
    assert isinstance(error, RecordTooLarge)
    assert error.record == oversize + 1
    assert error.offset == sum(map(len, records[:oversize]))
    assert str(error).startswith(
        f"Record {oversize + 1} (starting at byte {error.offset}) is {size} bytes, over the "
    )


LIMITS = st.integers(1, 200) | st.none()


@settings(deadline=None)
@given(case=ANY, limit=LIMITS, chunk_size=CHUNKS)
def test_multirecord_packs_consecutive_records_greedily(
    case: Case, limit: int | None, chunk_size: int
) -> None:
    split_type, (records, _) = case
    batches, error = both_ways(records, split_type, "MultiRecord", limit, chunk_size)
    oversize = first_oversize(list(map(len, records)), limit)
    done = sum(b.count for b in batches)
    assert done == (len(records) if oversize is None else oversize)
    check_too_large(error, records, oversize, 0 if oversize is None else len(records[oversize]))
    assert b"".join(b.body for b in batches) == b"".join(records[:done])
    first = offset = 0
    for i, batch in enumerate(batches):
        assert (batch.index, batch.first, batch.offset) == (i, first, offset)
        assert batch.count >= 1
        assert batch.records == records[first : first + batch.count]
        assert batch.body == b"".join(batch.records)  # framing kept
        first += batch.count
        offset += len(batch.body)
        if limit is not None:
            assert len(batch.body) <= limit
            if first < len(records):  # greedy: the next record did not fit
                assert len(batch.body) + len(records[first]) > limit
    if limit is None:
        assert len(batches) == min(1, len(records))


@settings(deadline=None)
@given(case=ANY, limit=LIMITS, chunk_size=CHUNKS)
def test_singlerecord_sends_each_payload_alone(
    case: Case, limit: int | None, chunk_size: int
) -> None:
    split_type, (records, payloads) = case
    batches, error = both_ways(records, split_type, "SingleRecord", limit, chunk_size)
    oversize = first_oversize(list(map(len, payloads)), limit)
    assert len(batches) == (len(records) if oversize is None else oversize)
    check_too_large(error, records, oversize, 0 if oversize is None else len(payloads[oversize]))
    offset = 0
    for i, batch in enumerate(batches):
        assert batch == MiniBatch(i, i, 1, offset, payloads[i], [records[i]])
        offset += len(records[i])


def test_the_fast_path_builds_no_record_lists_unless_asked() -> None:
    data = b"".join(f"{i},{i * i}\n".encode() for i in range(10_000))
    for strategy in ("SingleRecord", "MultiRecord"):
        batches = list(object_batches(io.BytesIO(data), "Line", strategy, 1000))
        assert all(b.records == [] for b in batches)
        assert sum(b.count for b in batches) == 10_000
        assert batches == [
            MiniBatch(b.index, b.first, b.count, b.offset, b.body, [])
            for b in mini_batches(split(data, "Line"), "Line", strategy, 1000, keep_records=True)
        ]


def test_requests_span_chunks_and_stop_at_the_limit() -> None:
    lines = [f"{i},{'x' * (i % 97)}\n".encode() for i in range(60_000)]
    limit = 1 << 20
    batches = list(object_batches(io.BytesIO(b"".join(lines)), "Line", "MultiRecord", limit))
    assert batches == list(mini_batches(lines, "Line", "MultiRecord", limit))
    assert len(batches) == 4
    assert b"".join(b.body for b in batches) == b"".join(lines)
    for batch, after in itertools.pairwise(batches):
        assert len(batch.body) <= limit < len(batch.body) + len(lines[after.first])


def test_a_record_over_max_payload_fails_the_object_with_a_clear_message() -> None:
    data = b"0123456789,abcdefgh\n" * 5 + b"0123456789,abcdefghijk\n"  # 6 records, 123 bytes
    data += b"y" * ((7 << 20) - 1) + b"\n"
    for strategy in ("SingleRecord", "MultiRecord"):
        batches, error = until_error(object_batches(io.BytesIO(data), "Line", strategy, 6 << 20))
        assert sum(cast(MiniBatch, b).count for b in batches) == 6
        assert isinstance(error, RecordTooLarge)
        assert (error.record, error.offset) == (7, 123)
        assert str(error) == (
            "Record 7 (starting at byte 123) is 7340032 bytes, over the MaxPayloadInMB limit of "
            "6 MB (6291456 bytes); SageMaker never splits a record: raise MaxPayloadInMB (at "
            "most 100) or cut the input into smaller records"
        )


def test_singlerecord_measures_the_payload_multirecord_the_framed_record() -> None:
    records = [encode_record(b"x" * 16), tfrecord(b"y" * 16)]
    for record, split_type in zip(records, ("RecordIO", "TFRecord"), strict=True):
        (batch,) = mini_batches([record], split_type, "SingleRecord", 16)
        assert batch.body == b"x" * 16 if split_type == "RecordIO" else b"y" * 16
        with pytest.raises(RecordTooLarge, match=f"is {len(record)} bytes, over the payload limit"):
            list(mini_batches([record], split_type, "MultiRecord", 16))


def test_no_records_no_batches() -> None:
    for strategy in ("SingleRecord", "MultiRecord"):
        assert list(object_batches(io.BytesIO(b""), "Line", strategy, None)) == []
        assert list(mini_batches([], "None", strategy, 5)) == []


def test_split_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(RecordTooLarge("Record 2 is big", 2, 10)))
    assert isinstance(error, RecordTooLarge)
    assert (str(error), error.record, error.offset) == ("Record 2 is big", 2, 10)


# --- output and arguments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assemble_with", "expected"),
    [
        ("None", [b"1\n2", b"", b"3\n"]),
        ("Line", [b"1\n2\n", b"\n", b"3\n"]),
    ],
)
def test_assembled(assemble_with: str, expected: list[bytes]) -> None:
    assert list(assembled(iter([b"1\n2", b"", b"3\n"]), assemble_with)) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: open_object(io.BytesIO(), "Zip"),
        lambda: iter_records(io.BytesIO(), "Lines"),
        lambda: iter_records(io.BytesIO(), "Line", 0),
        lambda: payload(b"", "JSON"),
        lambda: mini_batches([], "Line", "MULTI_RECORD", None),
        lambda: mini_batches([], "Line", "MultiRecord", 0),
        lambda: object_batches(io.BytesIO(), "RecordIo", "MultiRecord", None),
        lambda: assembled([], "Newline"),
    ],
)
def test_bad_arguments_fail_at_the_call(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        call()

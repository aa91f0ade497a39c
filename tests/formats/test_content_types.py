"""Content-Type / Accept parsing and the format table."""

from __future__ import annotations

import pytest

from opensage.formats import content_types as ct


def test_parse_with_parameters() -> None:
    mt = ct.parse_media_type("Text/CSV; Label_Size=1; charset=utf8")
    assert mt.essence == "text/csv"
    assert mt.params == {"label_size": "1", "charset": "utf8"}
    assert ct.label_size(mt) == 1
    assert ct.label_size("text/csv;label_size=0") == 0
    assert ct.label_size("text/csv") == 1
    assert ct.label_size(None, default=0) == 0
    mt = ct.parse_media_type('application/json;verbose="true;really"')
    assert mt.params["verbose"] == "true;really"
    assert str(ct.parse_media_type("application/json;verbose=true")) == (
        "application/json;verbose=true"
    )
    assert ct.parse_media_type("csv").essence == "text/csv"
    for bad in ("", "text", "text/csv;label_size", "a/b/c", "/x"):
        with pytest.raises(ValueError, match="media type"):
            ct.parse_media_type(bad)
    with pytest.raises(ValueError, match="integer"):
        ct.label_size("text/csv;label_size=x")
    with pytest.raises(ValueError, match=">= 0"):
        ct.label_size("text/csv;label_size=-1")


def test_format_table() -> None:
    assert ct.lookup("text/x-libsvm") is ct.lookup("libsvm") is ct.lookup("text/libsvm")
    assert ct.lookup("application/x-jsonlines") is ct.lookup(ct.JSONLINES)
    fmt = ct.lookup("application/x-recordio-protobuf")
    assert fmt is not None
    assert fmt.split_type == "RecordIO"
    assert ct.lookup("text/csv; label_size=0") is ct.FORMATS_BY_NAME["csv"]
    assert ct.lookup("application/x-unknown") is None
    assert ct.lookup(None) is None
    media = [f.media_type for f in ct.FORMATS]
    assert len(media) == len(set(media))


def test_accept() -> None:
    assert [m.essence for m in ct.parse_accept(None)] == ["*/*"]
    ranges = ct.parse_accept("text/*;q=0.5, application/json, */*;q=0.1, text/csv;q=0")
    assert [m.essence for m in ranges] == ["application/json", "text/*", "*/*"]
    offered = [ct.JSON, ct.JSONLINES, ct.CSV, ct.RECORDIO_PROTOBUF]
    assert ct.negotiate("*/*", offered) == ct.JSON
    assert ct.negotiate(None, offered) == ct.JSON
    assert ct.negotiate("text/*", offered) == ct.CSV
    assert ct.negotiate("application/x-jsonlines", offered) == ct.JSONLINES
    assert ct.negotiate("application/x-recordio-protobuf, */*;q=0.1", offered) == (
        ct.RECORDIO_PROTOBUF
    )
    assert ct.negotiate("image/png", offered) is None
    assert ct.negotiate("application/json;verbose=true", offered) == ct.JSON

"""Properties of what a stream writes and reads: every event frame survives an
independent SSE parser unchanged, and every cursor is either the id it renders or a
400 `bad-cursor`, never anything else (SPEC §4.1, §4.2, §4.5).

The parser here follows the WHATWG "event stream interpretation" rules line by line
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation);
it shares no code with genwire nor with httpx-sse, so the two sides can only agree
by both following the spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from genwire.api.sse import MAX_CURSOR_DIGITS, parse_cursor, resume_cursor
from genwire.errors import BadRequest
from genwire.models import EventType
from genwire.store.entries import LogEntry
from tests.wire import TERMINAL_TYPES, LiveServer


@dataclass(frozen=True)
class ParsedEvent:
    id: str  #: the last event ID buffer when the event was dispatched
    type: str
    data: str


@dataclass
class ParsedStream:
    events: list[ParsedEvent]
    retry_ms: int | None


_LINE_END = re.compile(r"\r\n|\r|\n")


def parse_event_stream(body: bytes) -> ParsedStream:
    """Interpret a whole event stream as a browser's EventSource would."""
    text = body.decode("utf-8").removeprefix("\ufeff")  # strict: a bad byte fails the test
    # The part after the last line end is an unfinished line: discarded at the end.
    *lines, _unfinished = _LINE_END.split(text)
    events: list[ParsedEvent] = []
    data, event_type, last_id, retry = "", "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append(ParsedEvent(last_id, event_type or "message", data[:-1]))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_type = value
        elif field == "data":
            data += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_id = value
        elif field == "retry" and re.fullmatch(r"[0-9]+", value):
            retry = int(value)
    return ParsedStream(events, retry)


# -- the encoder --------------------------------------------------------------------

#: Text that line-based framing could trip on (CR, LF and so CRLF), mixed into any
#: Unicode (lone surrogates excluded: see test_a_lone_surrogate_never_becomes_an_event).
awkward_text = st.text(
    st.sampled_from(["\r", "\n", "\0", ":", " ", "\u2028", "\u0085", "\ufeff", '"', "\\"])
    | st.characters(codec="utf-8"),
    max_size=40,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | awkward_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(awkward_text, children, max_size=4)
    ),
    max_leaves=12,
)

#: An event's own fields: any names but the two the store writes itself.
event_fields = st.dictionaries(
    awkward_text.filter(lambda name: name not in {"id", "type"}), json_values, max_size=5
)


def stored_payload(event_type: EventType, job_id: str, fields: dict[str, Any]) -> str:
    """The payload as the store appends it (genwire/store/transactions.py)."""
    payload: dict[str, Any] = {"type": event_type.value, "job_id": job_id}
    payload["ts"] = "2025-01-01T00:00:00.000000Z"
    payload.update(fields)
    return orjson.dumps(payload).decode()


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 10**MAX_CURSOR_DIGITS - 1),
    event_type=st.sampled_from(EventType),
    job_id=awkward_text,
    fields=event_fields,
)
def test_every_frame_parses_back_to_its_event(
    seq: int, event_type: EventType, job_id: str, fields: dict[str, Any]
) -> None:
    stored = stored_payload(event_type, job_id, fields)
    entry = LogEntry(seq, event_type, job_id, stored)

    (event,) = parse_event_stream(entry.frame).events

    assert event.id == entry.id
    assert event.type == event_type.value
    assert orjson.loads(event.data) == {"id": entry.id, **orjson.loads(stored)}
    assert parse_cursor(event.id, "last_event_id") == seq  # the id resumes after itself


@settings(max_examples=100, deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from(EventType), event_fields), min_size=1, max_size=6),
    retry_ms=st.integers(0, 10**6),
    keepalives=st.lists(awkward_text.map(lambda t: t.replace("\r", "").replace("\n", ""))),
)
def test_a_stream_of_frames_and_comments_parses_to_its_events_in_order(
    events: list[tuple[EventType, dict[str, Any]]], retry_ms: int, keepalives: list[str]
) -> None:
    entries = [
        LogEntry(seq, event_type, "job", stored_payload(event_type, "job", fields))
        for seq, (event_type, fields) in enumerate(events, start=1)
    ]
    body = f"retry: {retry_ms}\n\n".encode()
    for index, entry in enumerate(entries):
        body += entry.frame
        if index < len(keepalives):
            body += f": keepalive {keepalives[index]}\n\n".encode()

    stream = parse_event_stream(body)

    assert stream.retry_ms == retry_ms
    assert [(e.id, e.type) for e in stream.events] == [(e.id, e.type.value) for e in entries]
    assert [orjson.loads(e.data) for e in stream.events] == [orjson.loads(e.json) for e in entries]


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(categories=["Cs"]), min_size=1) | st.just("a\ud800b"))
def test_a_lone_surrogate_never_becomes_an_event(text: str) -> None:
    """JSON can spell a lone surrogate (`"\\ud800"`), but UTF-8 cannot carry it: the
    store's encoder refuses it outright, before anything is written or framed (and
    the API refuses such a body: test_a_body_with_a_lone_surrogate_is_a_400)."""
    with pytest.raises(orjson.JSONEncodeError):
        stored_payload(EventType.WARNING, "job", {"message": text})


# -- cursors ------------------------------------------------------------------------

ascii_digits = st.text("0123456789", max_size=30)
cursor_texts = st.one_of(
    ascii_digits,
    # Leading zeros of any length, before small and large numbers.
    st.builds(
        lambda zeros, number: "0" * zeros + str(number),
        st.integers(0, 6000),
        st.integers(0, 10**25),
    ),
    st.integers(1, 6000).map(lambda digits: "9" * digits),  # past int()'s 4300 digits
    st.builds(str.__add__, st.sampled_from(["+", "-", " ", "\t", "_", "0x", "1_"]), ascii_digits),
    st.builds(str.__add__, ascii_digits, st.sampled_from([" ", ".0", "e3", "_0", "\n", "\0"])),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=6),  # '٣', '７', …
    st.text(" \t0123456789٣+-_.e", max_size=12),
    st.text(max_size=12),
)


def cursor_of(text: str) -> int | None:
    """What a correct resume needs: the number an ASCII digit string (leading
    zeros and surrounding white space allowed) renders; None for anything else."""
    text = text.strip()
    if text == "":
        return 0
    if re.fullmatch(r"[0-9]+", text):
        return int(Decimal(text))  # Decimal: no cap on the digits, leading zeros included
    return None


def assert_parsed_as(value: str, parse: Callable[[], int]) -> None:
    """`parse()` gives `value`'s cursor, or a 400 `bad-cursor` where it has none
    (or it is past any id: more than MAX_CURSOR_DIGITS significant digits)."""
    expected = cursor_of(value)
    if expected is not None and expected < 10**MAX_CURSOR_DIGITS:
        assert parse() == expected, value
        return
    with pytest.raises(BadRequest) as refused:
        parse()
    assert (refused.value.status, refused.value.code) == (400, "bad-cursor"), value


@settings(max_examples=500, deadline=None)
@given(cursor_texts)
def test_a_cursor_is_its_number_or_a_bad_cursor_error(value: str) -> None:
    assert_parsed_as(value, lambda: parse_cursor(value.strip(), "after"))


def request_with(header: str | None, query: str | None) -> Request:
    headers = [] if header is None else [(b"last-event-id", header.encode("latin-1"))]
    query_string = "" if query is None else f"last_event_id={quote(query, safe='')}"
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/api/events",
            "headers": headers,
            "query_string": query_string.encode(),
        }
    )


#: Header values as a server hands them over: Latin-1, no line ends or NUL, and no
#: white space around them (HTTP's optional white space is not part of a value).
header_texts = cursor_texts.filter(
    lambda value: value.isprintable() and all(ord(char) < 256 for char in value)
).map(lambda value: value.strip(" \t"))


@settings(max_examples=300, deadline=None)
@given(header=st.none() | header_texts, query=st.none() | cursor_texts)
def test_resume_reads_the_header_else_the_query(header: str | None, query: str | None) -> None:
    """SPEC §4.2: the Last-Event-ID header wins; without it, the query; else 0."""
    request = request_with(header, query)
    effective = header or query or ""
    assert_parsed_as(effective, lambda: resume_cursor(request))


# -- through a live server ----------------------------------------------------------


def test_cursors_through_a_live_server_get_their_events_or_a_400(
    live_server: LiveServer,
) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = client.post(
            "/api/jobs",
            json={"pipeline": "demo.synthetic", "input": {"steps": 3, "step_ms": 1}},
            headers={"Prefer": "wait=30"},
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        last = int(client.get(f"/api/jobs/{job_id}").json()["last_event_id"])

        def check(answer: httpx.Response, value: str) -> None:
            assert answer.status_code < 500, (value, answer.text)
            if answer.status_code == 400:
                assert answer.json()["code"] == "bad-cursor", answer.text
                assert cursor_of(value) is None or cursor_of(value) >= 10**MAX_CURSOR_DIGITS
                return
            cursor = cursor_of(value)
            assert cursor is not None, (value, answer.status_code)
            if answer.status_code == 204:  # at or past the job's terminal event
                assert cursor >= last, value
            elif answer.url.path.endswith("/events"):
                assert cursor < last, value
                events = parse_event_stream(answer.content).events
                assert all(int(event.id) > cursor for event in events), value
                assert events[-1].type in TERMINAL_TYPES, value
            else:
                events = answer.json()["events"]
                assert all(int(event["id"]) > cursor for event in events), value

        @settings(max_examples=15, deadline=None)
        @given(header_texts.filter(lambda value: value.isascii()), cursor_texts)
        def resumes(header: str, query: str) -> None:
            path = f"/api/jobs/{job_id}/events"
            check(client.get(path, headers={"Last-Event-ID": header}), header or "")
            check(client.get(path, params={"last_event_id": query}), query)
            polled = client.get(f"/api/jobs/{job_id}/poll", params={"after": query, "wait": 0})
            check(polled, query)

        resumes()


def test_a_body_with_a_lone_surrogate_is_a_400(live_server: LiveServer) -> None:
    """JSON allows `"\\ud800"`; genwire cannot store it, and says so with a 400."""
    server = live_server()
    body = b'{"pipeline": "demo.synthetic", "input": {"steps": 1, "note": "\\ud800"}}'
    answer = httpx.post(
        f"{server.url}/api/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "malformed-json"

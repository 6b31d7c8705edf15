"""EDI interchanges in the store, on SQLite and PostgreSQL: bytes kept exactly, duplicates found by
sender and control number within a window, control numbers gapless per partner."""

from __future__ import annotations

import datetime as dt

import pytest

from ordersync.store import edi
from ordersync.store.db import Database

AT = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
RAW = b"\xef\xbb\xbfISA*00*...\xff\x00 not even UTF-8~"


@pytest.fixture
def db(store_url: str) -> Database:
    database = Database(store_url)
    database.migrate()
    return database


def test_an_interchange_is_kept_byte_for_byte_and_a_resend_is_found_within_the_window(db: Database) -> None:
    with db.write() as conn:
        edi.record_interchange(conn, interchange_id="i1", direction="in", raw=RAW, sender="12:4405197800",
                               receiver="01:999999999", control_number="000003438", partner="xyz", state="received",
                               at=AT)
        edi.record_interchange(conn, interchange_id="i2", direction="in", raw=RAW, sender="12:4405197800",
                               receiver="01:999999999", control_number="000003438", partner="xyz", state="received",
                               at=AT + dt.timedelta(hours=1))
    with db.read() as conn:
        assert edi.raw_interchange(conn, "i1") == RAW
        window = AT + dt.timedelta(hours=1) - dt.timedelta(days=30)
        assert edi.earlier_interchange(conn, direction="in", sender="12:4405197800", control_number="000003438",
                                       since=window, exclude="i2") == "i1"
        assert edi.earlier_interchange(conn, direction="in", sender="12:4405197800", control_number="000003438",
                                       since=AT + dt.timedelta(minutes=1), exclude="i2") is None  # outside the window
        assert edi.earlier_interchange(conn, direction="in", sender="ZZ:OTHER", control_number="000003438",
                                       since=window, exclude="i2") is None
    with db.write() as conn:
        edi.set_state(conn, "i1", "rejected", at=AT, detail="TA1 022")
    with db.read() as conn:  # a rejected interchange does not make a resend a duplicate
        assert edi.earlier_interchange(conn, direction="in", sender="12:4405197800", control_number="000003438",
                                       since=window, exclude="i2") is None


def test_control_numbers_are_gapless_per_partner_and_kind(db: Database) -> None:
    with db.write() as conn:
        assert [edi.next_control_number(conn, "xyz", "isa") for _ in range(3)] == [1, 2, 3]
        assert edi.next_control_number(conn, "xyz", "st") == 1
        assert edi.next_control_number(conn, "pgw", "isa") == 1
    with pytest.raises(RuntimeError), db.write() as conn:  # a send that failed gives its number back
        assert edi.next_control_number(conn, "xyz", "isa") == 4
        raise RuntimeError("the outbox write failed")
    with db.write() as conn:
        assert edi.next_control_number(conn, "xyz", "isa") == 4

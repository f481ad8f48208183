"""The store on a real PostgreSQL: migrations, the same history searches as on SQLite, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from mailwarden.errors import PolicyError
from mailwarden.model import Category
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventRecord, EventType, RecipientRecord
from mailwarden.store import Database, History, HistoryQuery, PolicyStore
from mailwarden.store.db import head_revision
from mailwarden.store.outbox import Outbox
from tests.unit.service.test_sender_activity import (
    test_a_batch_of_asks_is_answered_per_sender_and_per_time_as_one_ask_each as check_batch_of_asks,
)
from tests.unit.service.test_sender_activity import (
    test_an_hour_and_a_contact_already_on_record_add_up_and_move_on as check_upserts,
)
from tests.unit.service.test_sender_activity import (
    test_new_recipients_are_those_never_written_to_within_the_contact_window as check_new_recipients,
)
from tests.unit.store.records import T0, build_record
from tests.unit.store.search_cases import CASES, DATASET, names
from tests.unit.store.test_db import check_select_in
from tests.unit.store.test_reports import check_period_aggregates, check_reports
from tests.unit.store.test_reports import seed as seed_reports

pytestmark = pytest.mark.integration

TABLES = "events, recipients, messages, audit_log, policies, domains, organisations"


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    assert db.current_revision() is None  # a fresh database
    db.migrate()
    yield db
    db.close()


@pytest.fixture
def empty_pg(pg: Database) -> Database:
    with pg.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return pg


@pytest.fixture(scope="module")
def seeded_pg(pg: Database) -> History:
    with pg.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    history = History(pg)
    for rec in DATASET.values():
        history.record(rec)
    return history


def test_migrated_to_head_with_the_models_schema(pg: Database) -> None:
    assert pg.current_revision() == head_revision()
    pg.migrate()  # idempotent
    assert pg.schema_differences() == []
    with pg.engine.connect() as connection:
        indexes = set(
            connection.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")).scalars()
        )
        collation = connection.execute(
            text(
                "SELECT collation_name FROM information_schema.columns"
                " WHERE table_name = 'messages' AND column_name = 'id'"
            )
        ).scalar()
        subject_statistics = connection.execute(
            text("SELECT attstattarget FROM pg_attribute WHERE attrelid = 'messages'::regclass AND attname = 'subject'")
        ).scalar()
    assert {"ix_messages_subject_trgm", "ix_messages_sender_id", "ix_messages_category_id"} <= indexes
    assert subject_statistics == 1000  # the planner must tell common subject words from rare ones
    assert collation == "C"  # ids sort byte-wise, as ULIDs must, whatever the database locale


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[str(q) for q, _ in CASES])
def test_search_filter_matches_sqlite(seeded_pg: History, query: dict[str, object], expected: list[str]) -> None:
    assert names(seeded_pg, **query) == expected


def test_paging_with_cursor(seeded_pg: History) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = seeded_pg.search(HistoryQuery(limit=3, cursor=cursor))
        seen.extend(item.id for item in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted((rec.id for rec in DATASET.values()), reverse=True)


def test_round_trip_keeps_utc_times_and_verdict_json(empty_pg: Database) -> None:
    history = History(empty_pg)
    rec = build_record(category=Category.SPAM, internet_message_id="x@y")
    history.record(rec, [EventRecord(EventType.RECEIVE, at=T0), EventRecord(EventType.JUNK, at=T0)])
    detail = history.get(rec.id)
    assert detail.summary.received_at == rec.received_at
    assert detail.summary.received_at.utcoffset() is not None
    assert detail.verdict == rec.verdict.as_dict()
    assert [e.type for e in detail.events] == [EventType.RECEIVE, EventType.JUNK]


def test_a_batch_written_on_the_driver_reads_back_as_written(empty_pg: Database) -> None:
    """The history writer's path (`record_many`: one executemany per table on the driver, each value
    converted by its column's type): times stay UTC, JSON columns and the feed's row read back whole."""
    with empty_pg.engine.begin() as connection:
        connection.execute(text("TRUNCATE event_outbox RESTART IDENTITY CASCADE"))
    history = History(empty_pg)
    first = build_record(category=Category.SPAM, internet_message_id="<batch-1@example.org>")
    second = build_record(internet_message_id="<batch-2@example.org>")
    assert history.record_many([(first, [EventRecord(EventType.RECEIVE, at=T0)]), (second, [])]) == 2
    detail = history.get(first.id)
    assert detail.summary.received_at == first.received_at and detail.summary.received_at.utcoffset() is not None
    assert detail.verdict == first.verdict.as_dict()
    assert [(e.type, e.at) for e in detail.events] == [(EventType.RECEIVE, T0)]
    rows = Outbox(empty_pg).after(0, limit=10)
    assert [row.payload["message"]["id"] for row in rows] == [first.id, second.id]
    assert rows[0].payload["events"][0]["at"] == T0.isoformat()
    assert history.record_many([(first, []), (second, [])]) == 0  # a replay writes nothing twice


def test_sender_activity_counts_new_contacts_as_on_sqlite(empty_pg: Database) -> None:
    """The batch's one contact look-up (row-value IN) on PostgreSQL."""
    with empty_pg.engine.begin() as connection:
        connection.execute(text("TRUNCATE sender_hours, sender_contacts"))
    check_new_recipients(empty_pg)


def test_sender_histories_of_a_batch_as_on_sqlite(empty_pg: Database) -> None:
    """The scanning processes' batch look-up (row-value IN over VALUES, written out) on PostgreSQL."""
    with empty_pg.engine.begin() as connection:
        connection.execute(text("TRUNCATE sender_hours, sender_contacts"))
    check_batch_of_asks(empty_pg)


def test_sender_activity_adds_up_on_record_as_on_sqlite(empty_pg: Database) -> None:
    """The hours' and contacts' ON CONFLICT upserts, sent to the driver as compiled once, on PostgreSQL."""
    with empty_pg.engine.begin() as connection:
        connection.execute(text("TRUNCATE sender_hours, sender_contacts"))
    check_upserts(empty_pg)


def test_concurrent_recording_of_one_id_keeps_one_copy(empty_pg: Database) -> None:
    history = History(empty_pg)
    rec = build_record()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            history.record(rec, [EventRecord(EventType.RECEIVE, at=T0)])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(history.get(rec.id).events) == 1
    assert history.add_recipients(rec.id, [RecipientRecord("new@corp.example")]) == 1


def test_concurrent_recipient_merges_add_each_address_once(empty_pg: Database) -> None:
    history = History(empty_pg)
    rec = build_record(recipients=("a@corp.example",))
    history.record(rec)
    copies = [[f"u{i}@corp.example" for i in range(start, start + 6)] for start in (0, 2, 4, 6)]
    added: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(copies))

    def merge(addresses: list[str]) -> None:
        try:
            barrier.wait()
            added.append(history.add_recipients(rec.id, [RecipientRecord(a) for a in addresses]))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(c,)) for c in copies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = {"a@corp.example"} | {a for c in copies for a in c}
    assert sorted(history.get(rec.id).summary.recipients) == sorted(expected)
    assert sum(added) == len(expected) - 1


def test_import_refuses_a_domain_of_another_organisation(empty_pg: Database) -> None:
    store = PolicyStore(empty_pg)
    store.import_document(parse_organisation_document({"name": "acme", "domains": [{"name": "acme.example"}]}))
    store.import_document(parse_organisation_document({"name": "corp", "domains": [{"name": "corp.example"}]}))
    clash = parse_organisation_document(
        {"name": "corp", "monitor_only": False, "domains": [{"name": "corp.example"}, {"name": "acme.example"}]}
    )
    with pytest.raises(PolicyError, match=r"acme\.example already belongs to organisation acme"):
        store.import_document(clash)
    corp = store.get_organisation("corp")
    assert corp.domain_names == {"corp.example"} and corp.monitor_only is True
    assert store.policy_version("corp") == 1


def test_report_queries_as_on_sqlite(empty_pg: Database) -> None:
    history = History(empty_pg)
    seed_reports(history, build_record)
    check_reports(history)


def test_period_report_queries_as_on_sqlite(empty_pg: Database) -> None:
    check_period_aggregates(History(empty_pg), build_record)


def test_provider_verdicts_are_kept_searched_and_counted_as_on_sqlite(empty_pg: Database) -> None:
    from tests.unit.store import test_provider_verdict as cases

    cases.test_the_provider_verdict_is_read_back_with_how_it_compares(History(empty_pg), build_record)
    with empty_pg.session() as session:
        session.execute(text("TRUNCATE messages CASCADE"))
    cases.test_the_trace_finds_what_the_provider_passed_and_mailwarden_flagged(History(empty_pg), build_record)
    with empty_pg.session() as session:
        session.execute(text("TRUNCATE messages CASCADE"))
    cases.test_the_report_counts_the_agreement_matrix_and_lists_the_missed(History(empty_pg), build_record)


def test_a_look_up_by_a_list_of_values_as_on_sqlite(empty_pg: Database) -> None:
    """`select_in`'s statement written out for the driver (`%s` placeholders) on PostgreSQL."""
    with empty_pg.engine.begin() as connection:
        connection.execute(text("TRUNCATE organisations RESTART IDENTITY CASCADE"))
    check_select_in(empty_pg)

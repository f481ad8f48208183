"""The console's operations page and time zones: an administrator retries a deferred job from the page
or deletes it, an analyst only reads, a job being delivered cannot be deleted and the page says so; every
time is shown in the user's time zone with its abbreviation."""

from __future__ import annotations

import html
import threading
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from mailwarden.console import web_app
from mailwarden.console.timezones import when, zone_of
from mailwarden.deliver import DeliveryJob, DeliveryQueue, Route
from mailwarden.model.trace import EventRecord, EventType
from mailwarden.store.audit import AuditLog
from tests.unit.console.test_console import Setup, csrf_of, setup, sign_in
from tests.unit.service.ops_world import PASSWORD, Live, live
from tests.unit.store.records import build_record

__all__ = ["live", "setup"]  # the fixtures, used by name


def _client(live: Live, user: str, *, language: str = "en", tz: str | None = None) -> TestClient:
    app = web_app(live.rt, accounts=live.accounts)
    app.state.operations = live.ops
    client = TestClient(app, base_url="http://127.0.0.1", headers={"Accept-Language": language})
    if tz is not None:
        client.cookies.set("mw_tz", tz)
    token = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"csrf_token": token, "name": user, "password": PASSWORD}).status_code == 200
    return client


def test_an_admin_retries_a_deferred_job_from_the_page(live: Live) -> None:
    job = live.job(due_in=timedelta(hours=2))
    client = _client(live, "admin")
    page = client.get("/operations")
    text = html.unescape(page.text)
    assert page.status_code == 200 and job.id in text and "deferred" in text
    assert "451 4.2.0 mailbox busy" in text and "b@corp.example" in text and "mx.corp.example:25" in text
    live.relay.accept = True
    done = client.post(f"/operations/queue/{job.id}/retry", data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 200 and f"Job {job.id} will be tried again now." in done.text
    [entry] = AuditLog(live.rt.db).newest(limit=1)
    assert (entry["actor"], entry["action"]) == ("admin", "queue.retry")


def test_a_job_being_delivered_cannot_be_deleted_and_the_page_says_so(live: Live) -> None:
    live.relay.hold = threading.Event()
    job = live.job(due_in=timedelta(0))
    assert live.relay.started.wait(5)
    client = _client(live, "admin")
    page = client.get("/operations")
    assert "being delivered now" in page.text
    refused = client.post(f"/operations/queue/{job.id}/delete", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 409
    assert f"Job {job.id} is being delivered right now and cannot be changed" in html.unescape(refused.text)
    assert live.queue.get(job.id) is not None


def test_an_admin_deletes_a_job(live: Live) -> None:
    job = live.job()
    client = _client(live, "admin")
    token = csrf_of(client.get("/operations").text)
    done = client.post(f"/operations/queue/{job.id}/delete", data={"csrf_token": token})
    assert done.status_code == 200 and "was deleted" in done.text and "The delivery queue is empty." in done.text
    assert live.queue.get(job.id) is None


def test_an_analyst_reads_the_page_without_the_buttons_and_cannot_post(live: Live) -> None:
    job = live.job()
    client = _client(live, "analyst")
    page = client.get("/operations")
    assert page.status_code == 200 and job.id in page.text and "Retry now" not in page.text
    answer = client.post(f"/operations/queue/{job.id}/retry", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 403 and live.queue.get(job.id) is not None


def test_the_page_in_japanese_with_the_given_up_deliveries(live: Live) -> None:
    record = build_record(at=datetime.now(UTC) - timedelta(hours=5), subject="Bounced")
    live.rt.history.record(record)
    live.rt.history.add_event(
        record.id, EventRecord(EventType.FAIL, "expired after 9 attempts: busy", "bob@corp.example", "451 busy")
    )
    page = html.unescape(_client(live, "admin", language="ja").get("/operations").text)
    assert "運用: スプールと配送キュー" in page and "配送キューは空です。" in page
    assert "キューの保持期間が終了" in page and "Bounced" in page and "451 busy" in page


def test_times_are_shown_in_the_users_zone_with_its_abbreviation(live: Live) -> None:
    at = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert when(at, zone_of("Asia/Tokyo")[1]) == "2026-03-02 08:30 JST"  # +9 hours, the next day
    assert when(at, zone_of("Nowhere/Invalid")[1], "seconds") == "2026-03-01 23:30:00 UTC"
    record = build_record(at=at, subject="Tokyo time")
    live.rt.history.record(record)
    tokyo = html.unescape(_client(live, "admin", tz="Asia/Tokyo").get(f"/trace/{record.id}").text)
    assert "2026-03-02 08:30:00 JST" in tokyo and "23:30:00" not in tokyo
    utc = html.unescape(_client(live, "admin").get(f"/trace/{record.id}").text)
    assert "2026-03-01 23:30:00 UTC" in utc


def test_the_time_zone_page_saves_the_choice(live: Live) -> None:
    client = _client(live, "analyst")
    page = client.get("/timezone?next=/operations")
    assert "Asia/Tokyo" in page.text and "Times are shown in UTC." in page.text
    saved = client.post(
        "/timezone", data={"csrf_token": csrf_of(page.text), "timezone": "Asia/Tokyo", "next": "/operations"}
    )
    assert saved.status_code == 200 and str(saved.url).endswith("/operations")
    assert "Times: Asia/Tokyo" in saved.text
    ignored = client.post("/timezone", data={"csrf_token": csrf_of(saved.text), "timezone": "Mars/Base"})
    assert "Times: Asia/Tokyo" in ignored.text  # an unknown zone changes nothing


def test_a_console_without_the_delivering_process_shows_the_queue_without_buttons(setup: Setup) -> None:
    queue = DeliveryQueue(setup.rt.config.paths.queue_dir)
    job = DeliveryJob.create(message_id="01TESTMESSAGE0000000000000", mail_from="", recipients=["x@corp.example"],
                             route=Route(), message=b"x", lifetime=timedelta(days=1))  # fmt: skip
    queue.enqueue(job)
    client = sign_in(setup.client(), "admin")
    page = client.get("/operations")
    assert page.status_code == 200 and job.id in page.text and "x@corp.example" in page.text
    assert "retry and delete are not available here" in page.text and "Retry now" not in page.text
    answer = client.post(f"/operations/queue/{job.id}/retry", data={"csrf_token": csrf_of(page.text)})
    assert answer.status_code == 503 and queue.get(job.id) is not None

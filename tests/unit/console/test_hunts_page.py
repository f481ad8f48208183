"""The console's retro-hunt pages and the dashboard's line on what is kept: an analyst starts a search,
sees it queued and its results; a user never reaches the pages; a bad pattern is shown, not stored."""

from __future__ import annotations

import html

from mailwarden.model.trace import EventRecord, EventType
from mailwarden.store.hunts import HuntResult, HuntState, HuntStore
from tests.unit.console.test_console import Setup, csrf_of, setup, sign_in
from tests.unit.store.records import build_record

__all__ = ["setup"]  # the fixture, used by name


def test_an_analyst_starts_a_search_and_follows_it_to_its_results(setup: Setup) -> None:
    client = sign_in(setup.client(), "analyst")
    page = client.get("/hunts")
    assert page.status_code == 200 and "No hunts yet." in page.text
    form = {"csrf_token": csrf_of(page.text), "kind": "search", "urls": "evil.example\n", "since": "2026-01-01"}
    started = client.post("/hunts", data=form)
    assert started.status_code == 200 and "queued" in started.text  # followed to the hunt's own page
    store = HuntStore(setup.rt.db)
    [hunt] = store.newest()
    assert (hunt.created_by, hunt.query["urls"], hunt.since and hunt.since.isoformat()) == (
        "analyst",
        ["evil.example"],
        "2026-01-01T00:00:00+00:00",
    )
    assert 'hx-trigger="every 2s"' in started.text  # a queued hunt's page keeps itself up to date
    record = build_record()
    setup.rt.history.record(record)
    assert store.claim(hunt.id)
    found = HuntResult(record.id, "clean", "deliver", None, None, "matched url contains evil.example")
    store.progress(hunt.id, done=1, results=[found], events=[(record.id, EventRecord(EventType.RESCAN, "x"))])
    store.finish(hunt.id, HuntState.DONE)
    done = html.unescape(client.get(f"/hunts/{hunt.id}").text)
    assert record.id in done and "matched url contains evil.example" in done
    assert "every 2s" not in done


def test_a_bad_pattern_is_shown_with_the_form_and_nothing_is_queued(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    token = csrf_of(client.get("/hunts").text)
    response = client.post("/hunts", data={"csrf_token": token, "kind": "search", "subject": "(unclosed"})
    assert response.status_code == 422
    assert "not a valid RE2 pattern" in html.unescape(response.text) and "(unclosed" in response.text
    assert HuntStore(setup.rt.db).newest() == []


def test_in_japanese_a_refusal_says_so_and_keeps_the_services_words_marked_as_english(setup: Setup) -> None:
    client = sign_in(setup.client(language="ja"), "admin")
    token = csrf_of(client.get("/hunts").text)
    response = client.post("/hunts", data={"csrf_token": token, "kind": "search", "subject": "(unclosed"})
    assert response.status_code == 422
    shown = html.unescape(response.text)
    assert '実行できませんでした: <span lang="en" translate="no">subject: not a valid RE2 pattern' in shown
    english = sign_in(setup.client(), "admin")
    token = csrf_of(english.get("/hunts").text)
    refused = english.post("/hunts", data={"csrf_token": token, "kind": "search", "subject": "(unclosed"})
    assert "not a valid RE2 pattern" in refused.text and "Not done" not in refused.text  # English reads as before


def test_a_user_never_reaches_the_hunt_pages(setup: Setup) -> None:
    client = sign_in(setup.client(), "bob")
    assert client.get("/hunts").status_code == 403
    token = csrf_of(client.get("/quarantine").text)
    assert client.post("/hunts", data={"csrf_token": token, "kind": "rescan"}).status_code == 403
    assert HuntStore(setup.rt.db).newest() == []


def test_the_dashboard_says_what_is_kept_in_both_languages(setup: Setup) -> None:
    page = sign_in(setup.client(), "analyst").get("/").text
    assert "Kept for retro-hunt: 0 messages, 0.0 MB (0.0 MB compressed), 7 days" in page
    page = sign_in(setup.client(language="ja"), "analyst").get("/").text
    assert "再調査用に保存: 0 件" in page

"""The provider's verdict through the API: in a message's detail, as search filters, and its report."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict
from mailwarden.model.provider import Provider, ProviderCategory, ProviderVerdict
from mailwarden.model.trace import MessageRecord, RecipientRecord

from .conftest import NOW, World

API = "/api/v1"
_SECONDS = count(1)
GMAIL_CLEAN = ProviderVerdict(Provider.GOOGLE, ProviderCategory.CLEAN, fields={"x_gm_spam": "0", "x_gm_phishy": "0"})
M365_PHISH = ProviderVerdict(
    Provider.MICROSOFT_365, ProviderCategory.PHISH, scl=9, bcl=0, fields={"sfv": "SPM", "cat": "PHSH", "scl": "9"}
)


def journal_copy(world: World, subject: str, category: Category, provider: ProviderVerdict, *, org: str) -> str:
    """A journal copy recorded a second after the previous one, so newest first is the order of the calls."""
    at = NOW - timedelta(minutes=5) + timedelta(seconds=next(_SECONDS))
    message_id = new_id(at)
    world.rt.history.record(
        MessageRecord(
            id=message_id,
            organisation=org,
            received_at=at,
            direction=Direction.INBOUND,
            mode=Mode.MONITOR,
            source="journal",
            sender="someone@outside.example",
            from_address="someone@outside.example",
            subject=subject,
            internet_message_id=f"<{subject.replace(' ', '.')}@outside.example>",
            size=100,
            sha256="cd" * 32,
            client_ip=None,
            verdict=Verdict(direction=Direction.INBOUND, category=category, disposition=Disposition(Action.DELIVER)),
            applied=False,
            recipients=[RecipientRecord(f"alice@{org}.example")],
            provider=provider,
        )
    )
    return message_id


def test_the_message_detail_shows_the_providers_verdict_beside_mailwardens(world: World) -> None:
    missed = journal_copy(world, "missed malware", Category.MALWARE, GMAIL_CLEAN, org="corp")

    body = world.client.get(f"{API}/messages/{missed}", headers=world.as_("ana")).json()

    assert body["message"]["category"] == "malware"
    assert body["message"]["provider_verdict"] == {
        "provider": "google",
        "category": "clean",
        "scl": None,
        "bcl": None,
        "fields": {"x_gm_spam": "0", "x_gm_phishy": "0"},
        "agreement": "provider_missed",
    }
    other = world.messages["spam"]  # not a journal copy: no provider verdict
    assert (
        world.client.get(f"{API}/messages/{other}", headers=world.as_("ana")).json()["message"]["provider_verdict"]
        is None
    )


def test_search_filters_on_the_providers_verdict_and_the_report_lists_the_missed(world: World) -> None:
    missed = journal_copy(world, "missed malware", Category.MALWARE, GMAIL_CLEAN, org="corp")
    only = journal_copy(world, "provider phish", Category.CLEAN, M365_PHISH, org="corp")
    journal_copy(world, "agreed clean", Category.CLEAN, GMAIL_CLEAN, org="corp")
    elsewhere = journal_copy(world, "other org missed", Category.SPAM, GMAIL_CLEAN, org="other")
    ana = world.as_("ana")

    def ids(query: str, who: dict[str, str] = ana) -> list[str]:
        response = world.client.get(f"{API}/messages?{query}", headers=who)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["items"]]

    assert ids("agreement=provider_missed") == [elsewhere, missed]
    assert ids("agreement=provider_only") == [only]
    assert ids("provider_category=phish") == [only]
    assert ids("agreement=provider_missed", world.as_("carl")) == [elsewhere]  # carl sees his organisation only
    bad = world.client.get(f"{API}/messages?agreement=maybe", headers=ana)
    assert bad.status_code == 422

    report = world.client.get(f"{API}/reports/provider?organisation=corp", headers=ana)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["matrix"]["clean"]["malware"] == 1
    assert body["matrix"]["clean"]["clean"] == 1
    assert body["matrix"]["phish"]["clean"] == 1
    assert body["by_agreement"]["provider_missed"] == 1
    assert body["missed_by_category"] == {"malware": 1, "phish": 0, "spam": 0}
    assert [m["id"] for m in body["missed"]] == [missed]
    assert body["missed"][0]["provider_verdict"]["category"] == "clean"

    everything = world.client.get(f"{API}/reports/provider", headers=ana).json()
    assert [m["id"] for m in everything["missed"]] == [elsewhere, missed]
    carl = world.client.get(f"{API}/reports/provider", headers=world.as_("carl")).json()
    assert [m["id"] for m in carl["missed"]] == [elsewhere]
    assert world.client.get(f"{API}/reports/provider?organisation=corp", headers=world.as_("carl")).status_code == 404
    assert world.client.get(f"{API}/reports/provider", headers=world.as_("alice")).status_code == 403

"""Actions where the analyst is: from a message's page an admin blocks its sender (the list changes,
audited) and anyone on the staff reports it as spam, which the classifier learns from the kept copy."""

from __future__ import annotations

from mailwarden.pipeline.spam.stage import open_configured_classifier
from tests.unit.console.test_enforcing_pages import Setup, csrf_of, setup  # noqa: F401 (the fixture)


def test_an_admin_blocks_the_sender_from_the_message_page(setup: Setup) -> None:  # noqa: F811
    message_id = setup.ids[0]
    admin = setup.signed_in("admin")
    page = admin.get(f"/trace/{message_id}").text
    assert "Block the sender" in page
    done = admin.post(f"/trace/{message_id}/actions", data={"csrf_token": csrf_of(page), "action": "block_sender"})
    assert "partner@example.org added to Blocked senders." in done.text
    assert setup.rt.policies.get_policy("acme").lists.blocked_senders == ("partner@example.org",)
    again = admin.post(
        f"/trace/{message_id}/actions", data={"csrf_token": csrf_of(done.text), "action": "block_domain"}
    )
    assert "example.org added to Blocked domains." in again.text
    assert [e["action"] for e in setup.rt.audit.newest(limit=2)] == ["organisation.import", "organisation.import"]


def test_an_analyst_reports_spam_but_may_not_change_the_lists(setup: Setup) -> None:  # noqa: F811
    message_id = setup.ids[1]
    analyst = setup.signed_in("analyst")
    page = analyst.get(f"/trace/{message_id}").text
    assert "Report as spam" in page and "Block the sender" not in page
    refused = analyst.post(f"/trace/{message_id}/actions", data={"csrf_token": csrf_of(page), "action": "block_sender"})
    assert refused.status_code == 403
    assert setup.rt.policies.get_policy("acme").lists.blocked_senders == ()
    before = open_configured_classifier(setup.rt.stage_services).store.totals()
    done = analyst.post(f"/trace/{message_id}/actions", data={"csrf_token": csrf_of(page), "action": "report_spam"})
    assert "Report as spam: the classifier learnt it." in done.text
    after = open_configured_classifier(setup.rt.stage_services).store.totals()
    assert after == (before[0] + 1, before[1])
    assert setup.rt.audit.newest(limit=1)[0]["action"] == "message.report"

"""What an administrator or analyst does from one message (the console's message page and the API):
block or allow its sender or the sender's domain in the organisation's lists, and report it as spam or
not spam, which teaches the classifier the message as it was received.

Both are audited. A list change is saved against the policy version it was made to and made again on a
newer one if someone saved in between, so nothing another administrator changed is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from mailwarden.errors import NotFoundError, PolicyError, StaleVersionError
from mailwarden.model import Message
from mailwarden.model.envelope import domain_of
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.runtime import Runtime
from mailwarden.store.audit import write_entry
from mailwarden.store.kept import KeptStore


class ListAction(StrEnum):
    BLOCK_SENDER = "block_sender"
    BLOCK_DOMAIN = "block_domain"
    ALLOW_SENDER = "allow_sender"
    ALLOW_DOMAIN = "allow_domain"

    @property
    def list_name(self) -> str:
        verb, what = self.value.split("_")
        return f"{'blocked' if verb == 'block' else 'allowed'}_{what}s"


def sender_entry(action: ListAction, sender: str) -> str:
    """The list entry an action makes of a sender address: the address, or its domain."""
    if action in (ListAction.BLOCK_DOMAIN, ListAction.ALLOW_DOMAIN):
        domain = domain_of(sender)
        if not domain:
            raise PolicyError(f"{sender!r} has no domain to list")
        return domain
    if "@" not in sender:
        raise PolicyError(f"{sender!r} is not an address to list")
    return sender.lower()


def add_to_list(rt: Runtime, organisation: str, action: ListAction, sender: str, *, actor: str) -> tuple[str, bool]:
    """Add the sender (or its domain) to the organisation's list; (the entry, whether it was new)."""
    entry = sender_entry(action, sender)
    for _attempt in range(5):
        version = rt.policies.policy_version(organisation)
        data = rt.policies.export_document(organisation).model_dump(mode="json")
        current = data["policy"]["lists"][action.list_name]
        if entry in current:
            return entry, False
        current.append(entry)
        try:
            rt.policies.import_document(parse_organisation_document(data), actor=actor, expected_version=version)
        except StaleVersionError:
            continue
        return entry, True
    raise PolicyError(f"organisation {organisation}: the policy kept changing under this change; try again")


def report(rt: Runtime, message_id: str, *, spam: bool, actor: str) -> str:
    """Teach the classifier the message as spam or not spam, from the copy kept for retro-hunt; what the
    classifier made of it (learnt, relearnt, already known)."""
    from mailwarden.pipeline.spam.learning import learn_message
    from mailwarden.pipeline.spam.stage import open_configured_classifier

    kept = KeptStore(rt.db, rt.blobs)
    try:
        raw = kept.raw(kept.get(message_id))
    except NotFoundError:
        raise NotFoundError(
            f"message {message_id} is no longer kept ([retention] keep_days): it cannot be learnt from here"
        ) from None
    classifier = open_configured_classifier(rt.stage_services)
    outcome = learn_message(classifier, Message(raw), spam).value
    with rt.db.session() as session:
        write_entry(
            session, at=datetime.now(UTC), actor=actor, action="message.report", obj=f"message:{message_id}",
            before=None, after={"as": "spam" if spam else "not spam", "classifier": outcome},
        )  # fmt: skip
    return outcome

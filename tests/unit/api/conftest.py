"""A small world for API tests: one organisation, users of every role with tokens, history, quarantine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from mailwarden.console import web_app
from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict
from mailwarden.model.accounts import Role, Scope
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.quarantine import NewEntry, Reason
from mailwarden.model.trace import MessageRecord, RecipientRecord
from mailwarden.quarantine.service import Quarantine
from mailwarden.service.accounts import Accounts
from mailwarden.service.config import Config
from mailwarden.service.runtime import Runtime
from mailwarden.store.quarantine import QuarantineQuery
from tests.factories import build_message

# argon2 at its cheapest: the tests are about who may do what, not about hashing cost
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
NOW = datetime.now(UTC).replace(microsecond=0)
PASSWORD = "correct horse battery staple"


@dataclass
class World:
    rt: Runtime
    accounts: Accounts
    quarantine: Quarantine
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    entries: dict[str, str] = field(default_factory=dict)  # label → entry id
    messages: dict[str, str] = field(default_factory=dict)  # label → message id

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def _record(
    rt: Runtime,
    q: Quarantine,
    label: str,
    world: World,
    *,
    org: str,
    sender: str,
    to: tuple[str, ...],
    category: Category,
    reason: Reason,
    minutes: int,
) -> None:
    at = NOW - timedelta(minutes=minutes)
    message_id = new_id(at)
    raw = build_message(
        sender=sender, to=", ".join(to), subject=f"{label} message", html="<p>hi<img src='http://x.example/t.gif'></p>"
    )
    verdict = Verdict(direction=Direction.INBOUND, category=category, disposition=Disposition(Action.QUARANTINE), scl=9)
    rt.history.record(
        MessageRecord(
            id=message_id,
            organisation=org,
            received_at=at,
            direction=Direction.INBOUND,
            mode=Mode.ENFORCE,
            source="smtp",
            sender=sender,
            from_address=sender,
            subject=f"{label} message",
            internet_message_id=None,
            size=len(raw),
            sha256="ab" * 32,
            client_ip="192.0.2.10",
            verdict=verdict,
            applied=True,
            recipients=[RecipientRecord(r, field="to") for r in to],
        )
    )
    rt.blobs.put(message_id, raw)
    q.store.record(
        [
            NewEntry(
                message_id=message_id,
                organisation=org,
                recipient=r,
                reason=reason,
                sender=sender,
                subject=f"{label} message",
                received_at=at,
                expires_at=at + timedelta(days=15),
                would_have=False,
                blob_key=message_id,
                sha256="ab" * 32,
                size=len(raw),
            )
            for r in to
        ]
    )
    world.messages[label] = message_id
    for entry in q.list(QuarantineQuery(message_id=message_id)).items:
        world.entries[f"{label}:{entry.recipient.split('@')[0]}"] = entry.id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    yield w
    w.client.close()
    w.rt.close()


def build_world(root: Path) -> World:
    rt = Runtime(Config.model_validate({"paths": {"data_dir": str(root)}}))
    rt.db.migrate()
    for name, domain in (("corp", "corp.example"), ("other", "other.example")):
        rt.policies.import_document(
            parse_organisation_document(
                {
                    "name": name,
                    "monitor_only": False,
                    "domains": [{"name": domain, "mode": "gateway", "next_hop": "[127.0.0.1]:2525"}],
                }
            ),
            actor="test",
        )
    accounts = Accounts(rt.db, hasher=FAST_HASHER)
    quarantine = Quarantine(rt.db, rt.blobs, rt.history, policies=rt.policies.get_policy)
    client = TestClient(web_app(rt, accounts=accounts, quarantine=quarantine))
    w = World(rt, accounts, quarantine, client)
    users = {
        "root": (Role.ADMIN, None, None),
        "ana": (Role.ANALYST, None, None),
        "carl": (Role.ANALYST, None, "other"),  # an analyst of the other organisation only
        "alice": (Role.USER, "alice@corp.example", "corp"),
        "bob": (Role.USER, "bob@corp.example", "corp"),
    }
    for name, (role, email, org) in users.items():
        accounts.add_user(name, role=role, email=email, organisation=org, password=PASSWORD, actor="test")
        w.tokens[name] = accounts.create_token(name, name="test", actor="test")[1]
    w.tokens["root-read"] = accounts.create_token("root", name="ro", scopes={Scope.READ}, actor="test")[1]
    _quarantined_messages(rt, quarantine, w)
    return w


def _quarantined_messages(rt: Runtime, quarantine: Quarantine, w: World) -> None:
    """Five messages in history and quarantine: spam for alice and for bob, malware for both, phishing
    for alice, and spam in the other organisation."""
    _record(
        rt,
        quarantine,
        "spam",
        w,
        org="corp",
        sender="spammer@bad.example",
        to=("alice@corp.example",),
        category=Category.SPAM,
        reason=Reason.SPAM,
        minutes=30,
    )
    _record(
        rt,
        quarantine,
        "bobspam",
        w,
        org="corp",
        sender="spammer@bad.example",
        to=("bob@corp.example",),
        category=Category.SPAM,
        reason=Reason.SPAM,
        minutes=20,
    )
    _record(
        rt,
        quarantine,
        "malware",
        w,
        org="corp",
        sender="evil@bad.example",
        to=("alice@corp.example", "bob@corp.example"),
        category=Category.MALWARE,
        reason=Reason.MALWARE,
        minutes=10,
    )
    _record(
        rt,
        quarantine,
        "phish",
        w,
        org="corp",
        sender="phisher@bad.example",
        to=("alice@corp.example",),
        category=Category.PHISH,
        reason=Reason.PHISH,
        minutes=5,
    )
    _record(
        rt,
        quarantine,
        "otherspam",
        w,
        org="other",
        sender="spammer@bad.example",
        to=("dan@other.example",),
        category=Category.SPAM,
        reason=Reason.SPAM,
        minutes=1,
    )

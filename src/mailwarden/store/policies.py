"""Organisations, their accepted domains and their policy documents; every change is audited (audit.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError, PolicyError, StaleVersionError
from mailwarden.model import ConnectionMode, Domain, Organisation, Policy
from mailwarden.model.policy import DomainDocument, OrganisationDocument, validation_messages
from mailwarden.model.recipients import RecipientVerification
from mailwarden.store.audit import write_entry
from mailwarden.store.db import Database
from mailwarden.store.schema import DomainRow, OrganisationRow, PolicyRow


class PolicyStore:
    """Reads and writes organisations and policies. Every change is one transaction plus an audit row."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_organisations(self) -> list[Organisation]:
        with self.db.session() as session:
            rows = session.scalars(select(OrganisationRow).order_by(OrganisationRow.name)).all()
            return [_organisation(session, row) for row in rows]

    def get_organisation(self, name: str) -> Organisation:
        with self.db.session() as session:
            return _organisation(session, _require(session, name))

    def organisation_for_domain(self, domain: str) -> Organisation | None:
        """The organisation that owns `domain` (exact, case-insensitive), None when no one does."""
        with self.db.session() as session:
            row = session.scalars(
                select(OrganisationRow)
                .join(DomainRow, DomainRow.organisation_id == OrganisationRow.id)
                .where(DomainRow.name == domain.strip().lower())
            ).one_or_none()
            return None if row is None else _organisation(session, row)

    def get_policy(self, name: str) -> Policy:
        """The organisation's saved policy; the default policy when it has none saved yet."""
        with self.db.session() as session:
            return _policy(session, _require(session, name))

    def policy_version(self, name: str) -> int:
        """How many times the organisation's policy was saved (0: never)."""
        with self.db.session() as session:
            row = session.get(PolicyRow, _require(session, name).id)
            return 0 if row is None else row.version

    def export_document(self, name: str) -> OrganisationDocument:
        with self.db.session() as session:
            return _document(session, _require(session, name))

    def import_document(
        self, doc: OrganisationDocument, *, actor: str = "cli", expected_version: int | None = None
    ) -> Organisation:
        """Create or replace an organisation, its domain set and its policy, all or nothing.

        A domain that belongs to another organisation is refused (PolicyError naming it) and nothing
        is written. With `expected_version`, the policy must still be at that version when the change is
        written (checked in the same transaction, the row locked on PostgreSQL); otherwise
        StaleVersionError and nothing is written.
        """
        try:
            with self.db.session() as session:
                query = select(OrganisationRow).where(OrganisationRow.name == doc.name)
                row = session.scalars(query.with_for_update() if expected_version is not None else query).one_or_none()
                if expected_version is not None:
                    current = 0 if row is None else _version(session, row.id)
                    if current != expected_version:
                        raise StaleVersionError(
                            f"organisation {doc.name}: the policy is at version {current}, not {expected_version}; "
                            "read it again and reapply the change",
                            current=current,
                        )
                before = None if row is None else _document(session, row).model_dump(mode="json")
                wanted = {d.name for d in doc.domains}
                _refuse_foreign_domains(session, wanted, None if row is None else row.id)
                if row is None:
                    row = OrganisationRow(name=doc.name, monitor_only=doc.monitor_only, created_at=_now())
                    session.add(row)
                    session.flush()
                row.monitor_only = doc.monitor_only
                _replace_domains(session, row.id, doc)
                _save_policy(session, row.id, doc.policy, actor)
                session.flush()
                after = _document(session, row)
                _audit(session, actor, "organisation.import", f"organisation:{doc.name}", before, after)
                return _organisation(session, row)
        except IntegrityError:
            # Another writer took the name or one of the domains between our check and our commit.
            raise PolicyError(
                f"organisation {doc.name}: changed by another writer at the same time "
                "(a name or domain is now taken); nothing applied"
            ) from None

    def set_monitor_only(self, name: str, monitor_only: bool, *, actor: str = "cli") -> None:
        with self.db.session() as session:
            row = _require(session, name)
            if row.monitor_only == monitor_only:
                return
            _audit(
                session,
                actor,
                "organisation.set_monitor_only",
                f"organisation:{name}",
                {"monitor_only": row.monitor_only},
                {"monitor_only": monitor_only},
            )
            row.monitor_only = monitor_only

    def set_domain_mode(
        self,
        name: str,
        domain: str,
        mode: ConnectionMode,
        *,
        next_hop: str | None = None,
        actor: str = "cli",
    ) -> Domain:
        """Switch one domain of the organisation between journal (monitor) and gateway or mailflow
        (enforce), with one audit row (`domain.set_mode`). An enforcing mode needs a next hop: the one
        given, else the domain's own (PolicyError when neither; nothing changes)."""
        with self.db.session() as session:
            row = _require(session, name)
            wanted = domain.strip().lower()
            found = next((d for d in _domains(session, row.id) if d.name == wanted), None)
            if found is None:
                raise NotFoundError(f"organisation {name!r} has no domain {wanted!r}")
            hop = next_hop or found.next_hop
            try:  # the rules a whole document's domain obeys (a next hop to enforce, verification, ...)
                DomainDocument(
                    name=wanted,
                    mode=mode,
                    next_hop=hop,
                    require_tls=found.require_tls,
                    recipient_verification=_verification(found.recipient_verification),
                )
            except ValidationError as exc:
                # a rule between fields is the new mode's to meet: name that field
                errors = [m.replace("(document): ", "mode: ", 1) for m in validation_messages(exc)]
                raise PolicyError("; ".join(errors) + "; nothing applied", errors=errors) from None
            before = {"mode": found.mode, "next_hop": found.next_hop}
            after = {"mode": mode.value, "next_hop": hop}
            if before != after:
                found.mode, found.next_hop = mode.value, hop
                _audit(session, actor, "domain.set_mode", f"organisation:{name}", {wanted: before}, {wanted: after})
            session.flush()
            return _organisation(session, row).domain(wanted) or Domain(wanted, mode, hop)


def _now() -> datetime:
    return datetime.now(UTC)


def _require(session: Session, name: str) -> OrganisationRow:
    row = session.scalars(select(OrganisationRow).where(OrganisationRow.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"organisation {name!r} does not exist")
    return row


def _domains(session: Session, organisation_id: int) -> list[DomainRow]:
    return list(
        session.scalars(select(DomainRow).where(DomainRow.organisation_id == organisation_id).order_by(DomainRow.name))
    )


def _organisation(session: Session, row: OrganisationRow) -> Organisation:
    domains = tuple(
        Domain(d.name, ConnectionMode(d.mode), d.next_hop, d.require_tls, _verification(d.recipient_verification))
        for d in _domains(session, row.id)
    )
    return Organisation(row.name, domains, row.monitor_only, id=row.id)


def _verification(saved: dict[str, Any] | None) -> RecipientVerification:
    return RecipientVerification() if saved is None else RecipientVerification.model_validate(saved)


def _verification_json(verification: RecipientVerification) -> dict[str, Any] | None:
    if verification == RecipientVerification():  # the default stays NULL, as in rows from before revision 0005
        return None
    return verification.model_dump(mode="json")


def _policy(session: Session, row: OrganisationRow) -> Policy:
    saved = session.get(PolicyRow, row.id)
    return Policy() if saved is None else Policy.model_validate(saved.document)


def _document(session: Session, row: OrganisationRow) -> OrganisationDocument:
    return OrganisationDocument.from_organisation(_organisation(session, row), _policy(session, row))


def _refuse_foreign_domains(session: Session, names: set[str], organisation_id: int | None) -> None:
    if not names:
        return
    stmt = (
        select(DomainRow.name, OrganisationRow.name)
        .join(OrganisationRow, OrganisationRow.id == DomainRow.organisation_id)
        .where(DomainRow.name.in_(names))
        .order_by(DomainRow.name)
    )
    if organisation_id is not None:
        stmt = stmt.where(DomainRow.organisation_id != organisation_id)
    clashes = [f"domain {domain} already belongs to organisation {owner}" for domain, owner in session.execute(stmt)]
    if clashes:
        raise PolicyError("; ".join(clashes) + "; nothing applied", errors=clashes)


def _replace_domains(session: Session, organisation_id: int, doc: OrganisationDocument) -> None:
    current = {d.name: d for d in _domains(session, organisation_id)}
    wanted = {d.name: d for d in doc.domains}
    gone = [name for name in current if name not in wanted]
    if gone:
        session.execute(delete(DomainRow).where(DomainRow.organisation_id == organisation_id, DomainRow.name.in_(gone)))
    for name, d in wanted.items():
        row = current.get(name)
        if row is None:
            session.add(
                DomainRow(
                    organisation_id=organisation_id,
                    name=name,
                    mode=d.mode.value,
                    next_hop=d.next_hop,
                    require_tls=d.require_tls,
                    recipient_verification=_verification_json(d.recipient_verification),
                )
            )
        else:
            row.mode, row.next_hop, row.require_tls = d.mode.value, d.next_hop, d.require_tls
            row.recipient_verification = _verification_json(d.recipient_verification)


def _version(session: Session, organisation_id: int) -> int:
    row = session.get(PolicyRow, organisation_id)
    return 0 if row is None else row.version


def _save_policy(session: Session, organisation_id: int, policy: Policy, actor: str) -> None:
    document = policy.model_dump(mode="json")
    row = session.get(PolicyRow, organisation_id)
    if row is None:
        session.add(
            PolicyRow(
                organisation_id=organisation_id,
                document=document,
                version=1,
                updated_at=_now(),
                updated_by=actor,
            )
        )
    else:
        row.document, row.version, row.updated_at, row.updated_by = document, row.version + 1, _now(), actor


def _audit(
    session: Session,
    actor: str,
    action: str,
    obj: str,
    before: dict[str, Any] | OrganisationDocument | None,
    after: dict[str, Any] | OrganisationDocument | None,
) -> None:
    def plain(value: dict[str, Any] | OrganisationDocument | None) -> dict[str, Any] | None:
        return value.model_dump(mode="json") if isinstance(value, OrganisationDocument) else value

    write_entry(session, at=_now(), actor=actor, action=action, obj=obj, before=plain(before), after=plain(after))

"""Quarantine: list and filter, preview, download (.eml), release, request release, approve, deny, delete.

Who may do what is `quarantine.model.can`, asked through the service with the caller as the actor, so the
API, the console and the digest links never disagree. A user never learns that someone else's entry
exists: it answers 404, as for an id that was never used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mailwarden.api.deps import Caller, check_organisation
from mailwarden.api.errors import ApiError
from mailwarden.model.accounts import Principal, Role
from mailwarden.model.quarantine import Actor, Entry, Operation, Reason, Status
from mailwarden.model.quarantine import Role as QuarantineRole
from mailwarden.quarantine.service import Quarantine
from mailwarden.store.quarantine import MAX_LIMIT, QuarantineQuery

router = APIRouter(tags=["quarantine"])

EntryId = Annotated[str, Path(pattern=r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$", description="Entry id (ULID)")]


def quarantine(request: Request) -> Quarantine:
    found: Quarantine = request.app.state.quarantine
    return found


QuarantineDep = Annotated[Quarantine, Depends(quarantine)]


class EntryOut(BaseModel):
    id: str
    message_id: str
    organisation: str | None
    recipient: str
    reason: Reason
    sender: str
    subject: str
    received_at: datetime
    expires_at: datetime
    status: Status
    would_have: bool = Field(description="Monitor mode: would have been quarantined; the message was delivered")
    sha256: str
    size: int
    released_at: datetime | None
    released_by: str | None
    requested_at: datetime | None
    requested_by: str | None
    decided_at: datetime | None
    decided_by: str | None
    allowed: list[Operation] = Field(description="What the caller may do with this entry now")


class EntryPageOut(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class ReleaseIn(BaseModel):
    recipients: list[Annotated[str, Field(max_length=320)]] | None = Field(
        None, max_length=1000, description="Chosen original recipients; absent: every one the caller may release to"
    )


class AttachmentOut(BaseModel):
    filename: str | None
    declared_type: str
    real_type: str
    size: int
    sha256: str


class PreviewOut(BaseModel):
    headers: list[tuple[str, str]]
    text: str
    html: str = Field(description="Sanitised: no script, no remote content; show in a sandboxed iframe")
    attachments: list[AttachmentOut]
    blocked: int
    notes: list[str]


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.name, QuarantineRole(principal.role.value), principal.email)


def _check_entry_org(principal: Principal, entry: Entry) -> None:
    if principal.organisation is not None and entry.organisation != principal.organisation:
        raise ApiError(404, "not_found", f"quarantine entry {entry.id} does not exist")


def entry_out(q: Quarantine, actor: Actor, entry: Entry) -> EntryOut:
    return EntryOut(
        id=entry.id,
        message_id=entry.message_id,
        organisation=entry.organisation,
        recipient=entry.recipient,
        reason=entry.reason,
        sender=entry.sender,
        subject=entry.subject,
        received_at=entry.received_at,
        expires_at=entry.expires_at,
        status=entry.status,
        would_have=entry.would_have,
        sha256=entry.sha256,
        size=entry.size,
        released_at=entry.released_at,
        released_by=entry.released_by,
        requested_at=entry.requested_at,
        requested_by=entry.requested_by,
        decided_at=entry.decided_at,
        decided_by=entry.decided_by,
        allowed=[op for op in Operation if q.allowed(actor, op, entry)],
    )


def _get(q: Quarantine, principal: Principal, entry_id: str) -> Entry:
    entry = q.get(entry_id, actor_of(principal))
    _check_entry_org(principal, entry)
    return entry


@router.get("/quarantine", summary="Quarantine entries, newest first (a user: their own)")
def list_entries(
    principal: Caller,
    q: QuarantineDep,
    organisation: Annotated[str | None, Query(max_length=100)] = None,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
    reason: Reason | None = None,
    status: Status | None = None,
    sender: Annotated[str | None, Query(max_length=320, description="Address or @domain")] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    would_have: bool | None = None,
    message_id: Annotated[str | None, Query(max_length=26)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")] = None,
) -> EntryPageOut:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise ApiError(422, "invalid", f"{name}: must carry a time zone", field=name)
    if principal.organisation is not None:
        if organisation is not None:
            check_organisation(principal, organisation)
        organisation = principal.organisation
    if principal.role is Role.USER:
        recipient = principal.email
    query = QuarantineQuery(
        organisation=organisation,
        recipient=recipient,
        reason=reason,
        status=status,
        sender=sender,
        subject=subject,
        start=start,
        end=end,
        would_have=would_have,
        message_id=message_id,
        limit=limit,
        cursor=cursor,
    )
    actor = actor_of(principal)
    page = q.list(query, actor)
    return EntryPageOut(items=[entry_out(q, actor, e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/quarantine/{entry_id}", summary="One entry")
def get_entry(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> EntryOut:
    return entry_out(q, actor_of(principal), _get(q, principal, entry_id))


@router.get("/quarantine/{entry_id}/preview", summary="Headers, text, sanitised HTML, attachment list")
def preview_entry(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> PreviewOut:
    _get(q, principal, entry_id)
    p = q.preview(entry_id, actor_of(principal))
    return PreviewOut(
        headers=[(k, v) for k, v in p.headers],
        text=p.text,
        html=p.html,
        attachments=[
            AttachmentOut(
                filename=a.filename, declared_type=a.declared_type, real_type=a.real_type, size=a.size, sha256=a.sha256
            )
            for a in p.attachments
        ],
        blocked=p.blocked,
        notes=list(p.notes),
    )


@router.get(
    "/quarantine/{entry_id}/download",
    summary="The original message, byte for byte (.eml)",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}, "description": "The message"}},
)
def download_entry(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> Response:
    entry = _get(q, principal, entry_id)
    raw = q.download(entry_id, actor_of(principal))
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="{entry.id}.eml"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/quarantine/{entry_id}/release", summary="Release to all (or the chosen) original recipients")
def release_entry(
    principal: Caller, q: QuarantineDep, entry_id: EntryId, body: ReleaseIn | None = None
) -> list[EntryOut]:
    _get(q, principal, entry_id)
    actor = actor_of(principal)
    released = q.release(entry_id, actor, None if body is None else body.recipients)
    return [entry_out(q, actor, e) for e in released]


@router.post("/quarantine/{entry_id}/request", summary="Ask an administrator to release (users)")
def request_release(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> EntryOut:
    _get(q, principal, entry_id)
    actor = actor_of(principal)
    return entry_out(q, actor, q.request_release(entry_id, actor))


@router.post("/quarantine/{entry_id}/approve", summary="Grant a release request")
def approve_request(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> list[EntryOut]:
    _get(q, principal, entry_id)
    actor = actor_of(principal)
    return [entry_out(q, actor, e) for e in q.approve(entry_id, actor)]


@router.post("/quarantine/{entry_id}/deny", summary="Refuse a release request")
def deny_request(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> EntryOut:
    _get(q, principal, entry_id)
    actor = actor_of(principal)
    return entry_out(q, actor, q.deny(entry_id, actor))


@router.delete("/quarantine/{entry_id}", summary="Delete the entry (the message goes when no entry needs it)")
def delete_entry(principal: Caller, q: QuarantineDep, entry_id: EntryId) -> EntryOut:
    _get(q, principal, entry_id)
    actor = actor_of(principal)
    return entry_out(q, actor, q.delete(entry_id, actor))

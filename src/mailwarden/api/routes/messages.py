"""Message trace: search (History.search filters, keyset paging) and one message's detail and timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from mailwarden.api.deps import Rt, Staff, check_organisation
from mailwarden.api.errors import ApiError, not_found
from mailwarden.errors import NotFoundError
from mailwarden.model import Action, Category, Direction
from mailwarden.model.provider import Agreement, Provider, ProviderCategory
from mailwarden.store.history_search import MAX_LIMIT, HistoryQuery, MessageSummary

router = APIRouter(tags=["messages"])

MessageId = Annotated[str, Path(pattern=r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$", description="A trace id (ULID)")]


class ProviderVerdictOut(BaseModel):
    """The mail provider's verdict of a journal copy, normalised, with the fields it was read from."""

    provider: Provider
    category: ProviderCategory
    scl: int | None
    bcl: int | None
    fields: dict[str, str]
    agreement: Agreement | None = None  # how it compares with mailwarden's verdict


class MessageOut(BaseModel):
    id: str
    received_at: datetime
    organisation: str | None
    direction: Direction
    mode: str
    source: str
    sender: str
    from_address: str | None
    subject: str
    internet_message_id: str | None
    size: int
    category: Category
    scl: int
    bcl: int
    action: Action
    applied: bool
    recipients: list[str]
    provider_verdict: ProviderVerdictOut | None = None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class RecipientOut(BaseModel):
    address: str
    field: str
    status: str
    expanded_from: str | None
    forwarded_from: str | None


class EventOut(BaseModel):
    at: datetime | None
    type: str
    recipient: str | None
    detail: str
    smtp_reply: str | None


class MessageDetailOut(BaseModel):
    message: MessageOut
    verdict: dict[str, Any]
    findings: list[dict[str, Any]]
    recipients: list[RecipientOut]
    timeline: list[EventOut]
    client_ip: str | None
    sha256: str


def message_out(s: MessageSummary) -> MessageOut:
    return MessageOut(
        id=s.id,
        received_at=s.received_at,
        organisation=s.organisation,
        direction=s.direction,
        mode=s.mode.value,
        source=s.source,
        sender=s.sender,
        from_address=s.from_address,
        subject=s.subject,
        internet_message_id=s.internet_message_id,
        size=s.size,
        category=s.category,
        scl=s.scl,
        bcl=s.bcl,
        action=s.action,
        applied=s.applied,
        recipients=s.recipients,
        provider_verdict=provider_out(s),
    )


def provider_out(s: MessageSummary) -> ProviderVerdictOut | None:
    p = s.provider
    if p is None:
        return None
    return ProviderVerdictOut(
        provider=p.provider, category=p.category, scl=p.scl, bcl=p.bcl, fields=dict(p.fields), agreement=s.agreement
    )


@router.get("/messages", summary="Search the message trace")
async def search_messages(
    principal: Staff,
    rt: Rt,
    start: Annotated[datetime | None, Query(description="Received at or after (ISO 8601 with zone)")] = None,
    end: Annotated[datetime | None, Query(description="Received at or before (ISO 8601 with zone)")] = None,
    sender: Annotated[str | None, Query(max_length=320, description="Address, @domain, or <> for null")] = None,
    recipient: Annotated[str | None, Query(max_length=320, description="Address or @domain")] = None,
    subject: Annotated[str | None, Query(max_length=500, description="Every word must occur")] = None,
    message_id: Annotated[str | None, Query(max_length=998, description="The Message-ID header")] = None,
    direction: Direction | None = None,
    category: Category | None = None,
    action: Action | None = None,
    organisation: Annotated[str | None, Query(max_length=100)] = None,
    provider_category: Annotated[
        ProviderCategory | None, Query(description="The mail provider's verdict of a journal copy")
    ] = None,
    agreement: Annotated[
        Agreement | None,
        Query(
            description="The provider's verdict against mailwarden's: `provider_missed` (the provider passed, "
            "mailwarden flagged spam, phish or malware), `provider_only` (the reverse), `agree`, `differ`, `unknown`"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=26, description="`next_cursor` of the previous page")] = None,
) -> MessagePage:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise ApiError(422, "invalid", f"{name}: must carry a time zone", field=name)
    if start is not None and end is not None and start > end:
        raise ApiError(422, "invalid", "start: is after end", field="start")
    if principal.organisation is not None:
        if organisation is not None:
            check_organisation(principal, organisation)
        organisation = principal.organisation
    try:
        query = HistoryQuery(
            start=start,
            end=end,
            sender=sender,
            recipient=recipient,
            subject=subject,
            internet_message_id=message_id,
            direction=direction,
            category=category,
            action=action,
            organisation=organisation,
            provider_category=provider_category,
            agreement=agreement,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc), field="cursor" if "cursor" in str(exc) else None) from None
    page = await run_in_threadpool(rt.history.search, query)
    return MessagePage(items=[message_out(s) for s in page.items], next_cursor=page.next_cursor)


@router.get("/messages/{message_id}", summary="One message: verdict, findings, timeline, per-recipient status")
async def get_message(principal: Staff, rt: Rt, message_id: MessageId) -> MessageDetailOut:
    try:
        detail = await run_in_threadpool(rt.history.get, message_id.upper())
    except NotFoundError:
        raise not_found(f"message {message_id} is not in history") from None
    if principal.organisation is not None and detail.summary.organisation != principal.organisation:
        raise not_found(f"message {message_id} is not in history")
    stages = detail.verdict.get("stages") or []
    findings = [f for stage in stages for f in stage.get("findings", [])]
    return MessageDetailOut(
        message=message_out(detail.summary),
        verdict=detail.verdict,
        findings=findings,
        recipients=[
            RecipientOut(
                address=r.address,
                field=r.field,
                status=r.status.value,
                expanded_from=r.expanded_from,
                forwarded_from=r.forwarded_from,
            )
            for r in detail.recipients
        ],
        timeline=[
            EventOut(at=e.at, type=e.type.value, recipient=e.recipient, detail=e.detail, smtp_reply=e.smtp_reply)
            for e in detail.events
        ],
        client_ip=detail.client_ip,
        sha256=detail.sha256,
    )

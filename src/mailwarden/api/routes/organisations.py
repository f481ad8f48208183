"""Organisations and domains (with the monitor / enforce switch), policy documents, transport rules, lists.

Every change rebuilds the whole organisation document and saves it through PolicyStore.import_document:
one transaction with one audit row (before / after), validated whole first, so nothing is half-applied.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Path, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from mailwarden.api.deps import Admin, Rt, Staff, check_organisation
from mailwarden.api.errors import ApiError
from mailwarden.errors import StaleVersionError
from mailwarden.model import Direction, Message, Organisation, Policy
from mailwarden.model.accounts import Principal
from mailwarden.model.org import ConnectionMode
from mailwarden.model.policy import OrganisationDocument, SenderLists, validation_messages
from mailwarden.model.rules import Rule
from mailwarden.service.ruletest import RuleTestResult, rule_test_envelope, run_rule_test
from mailwarden.service.runtime import Runtime

router = APIRouter(tags=["organisations"])

MAX_TEST_MESSAGE = 25 * 1024 * 1024
RULE_TEST_TIMEOUT = 60  # seconds
OrgName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$", description="Organisation name")]


class DomainOut(BaseModel):
    name: str
    mode: ConnectionMode
    next_hop: str | None
    require_tls: bool


class OrganisationOut(BaseModel):
    name: str
    mode: str = Field(description="monitor (every domain only recorded) or enforce")
    monitor_only: bool
    domains: list[DomainOut]


class ModeIn(BaseModel):
    mode: Annotated[str, Field(pattern=r"^(monitor|enforce)$")]


MERGE_PATCH = "application/merge-patch+json"


class PolicyOut(BaseModel):
    organisation: str
    version: int
    policy: Policy


class RuleOrderIn(BaseModel):
    names: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(max_length=10_000)


class ListName(StrEnum):
    ALLOWED_SENDERS = "allowed_senders"
    BLOCKED_SENDERS = "blocked_senders"
    ALLOWED_DOMAINS = "allowed_domains"
    BLOCKED_DOMAINS = "blocked_domains"
    IP_ALLOW = "ip_allow"
    IP_BLOCK = "ip_block"


class ListEntryIn(BaseModel):
    value: Annotated[str, Field(min_length=1, max_length=320)]


class RuleHit(BaseModel):
    rule: str
    detail: str


class RuleTestOut(BaseModel):
    direction: str
    sender: str
    recipients: list[str]
    matched: list[RuleHit]
    action: str
    reason: str
    smtp_reply: str | None
    notes: list[str]


def organisation_out(org: Organisation) -> OrganisationOut:
    return OrganisationOut(
        name=org.name,
        mode="monitor" if org.monitor_only else "enforce",
        monitor_only=org.monitor_only,
        domains=[
            DomainOut(name=d.name, mode=d.mode, next_hop=d.next_hop, require_tls=d.require_tls) for d in org.domains
        ],
    )


def _visible(principal: Principal, rt: Runtime, name: str) -> Organisation:
    check_organisation(principal, name)
    return rt.policies.get_organisation(name)


def _field(messages: list[str], exc: ValidationError) -> str | None:
    first = exc.errors()[0] if exc.errors() else None
    if first is None:
        return None
    loc = [str(p) for p in first["loc"]]
    return ".".join(loc[1:] if loc and loc[0] == "policy" else loc) or None


def _change_policy(
    rt: Runtime,
    name: str,
    actor: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    if_match: int | None = None,
) -> Policy:
    """Apply `change` to the policy document, validate the whole, save it in one audited transaction.

    The save is conditional on the version the change was made to: with `if_match` (a client's If-Match)
    a policy changed since is 412 and nothing is written; without, the change is made again on the newer
    document (a rule added by one admin is not lost to a list entry added by another at the same moment)."""
    for _attempt in range(5):
        version = rt.policies.policy_version(name)
        if if_match is not None and version != if_match:
            raise _stale(name, version)
        data = rt.policies.export_document(name).model_dump(mode="json")
        data["policy"] = change(data["policy"])
        try:
            doc = OrganisationDocument.model_validate(data)
        except ValidationError as exc:
            messages = [m.removeprefix("policy.") for m in validation_messages(exc)]
            raise ApiError(422, "invalid_policy", "; ".join(messages), field=_field(messages, exc)) from None
        try:
            rt.policies.import_document(doc, actor=actor, expected_version=version)
        except StaleVersionError as exc:
            if if_match is not None:
                raise _stale(name, exc.current) from None
            continue
        return doc.policy
    raise ApiError(409, "conflict", f"organisation {name}: the policy kept changing under this change; try again")


def _stale(name: str, current: int) -> ApiError:
    return ApiError(
        412, "precondition_failed",
        f"the policy of {name} is at version {current} (ETag \"{current}\"), not the one this change was made to; "
        "read it again and reapply the change",
    )  # fmt: skip


def etag(version: int) -> str:
    return f'"{version}"'


def _if_match(header: str | None, *, required: bool) -> int | None:
    """The version an If-Match header names ("7" or W/"7"); 428 when a whole-document PUT has none."""
    if header is None:
        if required:
            raise ApiError(
                428, "precondition_required",
                "replacing the whole policy needs If-Match with the ETag of the version it was made from "
                "(GET it first); to change part of it, PATCH a JSON merge patch",
            )  # fmt: skip
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ApiError(412, "precondition_failed", f"If-Match {header!r} is not an ETag of this policy")
    return int(value)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- organisations and domains -----------------------------------------------------------------


@router.get("/organisations", summary="Organisations, their domains and mode")
def list_organisations(principal: Staff, rt: Rt) -> list[OrganisationOut]:
    orgs = rt.policies.list_organisations()
    return [organisation_out(o) for o in orgs if principal.organisation in (None, o.name)]


@router.get("/organisations/{name}", summary="One organisation")
def get_organisation(principal: Staff, rt: Rt, name: OrgName) -> OrganisationOut:
    return organisation_out(_visible(principal, rt, name))


@router.get("/organisations/{name}/domains", summary="An organisation's accepted domains")
def list_domains(principal: Staff, rt: Rt, name: OrgName) -> list[DomainOut]:
    return organisation_out(_visible(principal, rt, name)).domains


@router.put("/organisations/{name}/mode", summary="Switch an organisation between monitor and enforce")
def set_mode(principal: Admin, rt: Rt, name: OrgName, body: ModeIn) -> OrganisationOut:
    _visible(principal, rt, name)
    rt.policies.set_monitor_only(name, body.mode == "monitor", actor=principal.name)
    return organisation_out(rt.policies.get_organisation(name))


# ---- the policy document -------------------------------------------------------------------------


IfMatch = Annotated[str | None, Header(description='the ETag of the policy version the change was made to ("7")')]


def _policy_out(rt: Runtime, name: str, response: Response, policy: Policy | None = None) -> PolicyOut:
    version = rt.policies.policy_version(name)
    response.headers["ETag"] = etag(version)
    return PolicyOut(organisation=name, version=version, policy=policy or rt.policies.get_policy(name))


@router.get("/organisations/{name}/policy", summary="The whole policy document (ETag: its version)")
def get_policy(principal: Staff, rt: Rt, name: OrgName, response: Response) -> PolicyOut:
    _visible(principal, rt, name)
    return _policy_out(rt, name, response)


@router.put(
    "/organisations/{name}/policy",
    summary="Replace the whole policy document (all or nothing; If-Match required)",
    responses={412: {"description": "The policy changed since that ETag"}, 428: {"description": "No If-Match"}},
)
def put_policy(
    principal: Admin, rt: Rt, name: OrgName, body: Policy, response: Response, if_match: IfMatch = None
) -> PolicyOut:
    _visible(principal, rt, name)
    expected = _if_match(if_match, required=True)
    policy = _change_policy(rt, name, principal.name, lambda _old: body.model_dump(mode="json"), if_match=expected)
    return _policy_out(rt, name, response, policy)


@router.patch(
    "/organisations/{name}/policy",
    summary="Change part of the policy (a JSON merge patch, RFC 7396; If-Match optional)",
    openapi_extra={
        "requestBody": {"required": True, "content": {MERGE_PATCH: {"schema": {"type": "object"}}}},
    },
    responses={412: {"description": "The policy changed since that ETag"}, 415: {"description": "Not a merge patch"}},
)
async def patch_policy(
    principal: Admin, rt: Rt, name: OrgName, request: Request, response: Response, if_match: IfMatch = None
) -> PolicyOut:
    await run_in_threadpool(_visible, principal, rt, name)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in (MERGE_PATCH, "application/json"):
        raise ApiError(415, "unsupported_media_type", f"send the change as {MERGE_PATCH}, not {kind or 'nothing'}")
    try:
        patch = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(patch, dict):
        raise ApiError(422, "invalid_policy", "a merge patch of the policy is a JSON object")
    expected = _if_match(if_match, required=False)
    change: Callable[[dict[str, Any]], dict[str, Any]] = lambda old: merge_patch(old, patch)  # noqa: E731
    policy = await run_in_threadpool(_change_policy, rt, name, principal.name, change, if_match=expected)
    return await run_in_threadpool(_policy_out, rt, name, response, policy)


# ---- transport rules ---------------------------------------------------------------------------


def _rules(rt: Runtime, name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = rt.policies.get_policy(name).model_dump(mode="json")["rules"]
    return rules


def _index(rules: list[dict[str, Any]], rule_name: str) -> int:
    for i, rule in enumerate(rules):
        if rule["name"] == rule_name:
            return i
    raise ApiError(404, "not_found", f"rule {rule_name!r} does not exist")


@router.get("/organisations/{name}/rules", summary="Transport rules in their order")
def list_rules(principal: Staff, rt: Rt, name: OrgName) -> list[Rule]:
    _visible(principal, rt, name)
    return list(rt.policies.get_policy(name).rules)


@router.post("/organisations/{name}/rules", status_code=201, summary="Add a rule (at the end, or at `position`)")
def create_rule(
    principal: Admin,
    rt: Rt,
    name: OrgName,
    body: Rule,
    position: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> Rule:
    _visible(principal, rt, name)
    if any(r["name"] == body.name for r in _rules(rt, name)):
        raise ApiError(409, "conflict", f"rule {body.name!r} already exists", field="name")

    def add(policy: dict[str, Any]) -> dict[str, Any]:
        rules = list(policy["rules"])
        rules.insert(len(rules) if position is None else position, body.model_dump(mode="json"))
        return {**policy, "rules": rules}

    _change_policy(rt, name, principal.name, add)
    return body


@router.post("/organisations/{name}/rules/reorder", summary="Put the rules in this order (every name once)")
def reorder_rules(principal: Admin, rt: Rt, name: OrgName, body: RuleOrderIn) -> list[Rule]:
    _visible(principal, rt, name)
    current = {r["name"]: r for r in _rules(rt, name)}
    if sorted(body.names) != sorted(current):
        raise ApiError(422, "invalid", "names: must list every rule of the organisation exactly once", field="names")
    policy = _change_policy(rt, name, principal.name, lambda p: {**p, "rules": [current[n] for n in body.names]})
    return list(policy.rules)


@router.post("/organisations/{name}/rules/test", summary="Which rules match an uploaded .eml, and what would happen")
async def test_rules(
    principal: Staff,
    rt: Rt,
    name: OrgName,
    message: Annotated[UploadFile, File(description="The message (.eml)")],
    sender: Annotated[str | None, Form(max_length=320)] = None,
    recipients: Annotated[str | None, Form(max_length=10_000, description="Comma-separated")] = None,
    direction: Annotated[Direction | None, Form()] = None,
    ip: Annotated[str | None, Form(max_length=45)] = None,
    rules: Annotated[str | None, Form(max_length=1_000_000, description="JSON list: test these instead")] = None,
) -> RuleTestOut:
    org = await run_in_threadpool(_visible, principal, rt, name)
    policy = await run_in_threadpool(rt.policies.get_policy, name)
    if rules is not None:
        policy = _draft_rules(policy, rules)
    raw = await message.read(MAX_TEST_MESSAGE + 1)
    if len(raw) > MAX_TEST_MESSAGE:
        raise ApiError(413, "too_large", f"message: larger than {MAX_TEST_MESSAGE} bytes", field="message")
    msg = Message(raw)
    rcpts = tuple(r for r in (recipients or "").split(",") if r.strip())
    envelope = rule_test_envelope(msg, sender=sender, recipients=rcpts, client_ip=ip)
    result = await asyncio.wait_for(run_rule_test(msg, envelope, policy, org, direction=direction), RULE_TEST_TIMEOUT)
    return _rule_test_out(result)


def _draft_rules(policy: Policy, text: str) -> Policy:
    try:
        data = json.loads(text)
    except ValueError:
        raise ApiError(422, "invalid", "rules: not JSON", field="rules") from None
    if not isinstance(data, list):
        raise ApiError(422, "invalid", "rules: must be a JSON list of rules", field="rules")
    try:
        return Policy.model_validate({**policy.model_dump(mode="json"), "rules": data})
    except ValidationError as exc:
        messages = validation_messages(exc)
        raise ApiError(422, "invalid_policy", "; ".join(messages), field=_field(messages, exc)) from None


def _rule_test_out(result: RuleTestResult) -> RuleTestOut:
    disposition = result.verdict.disposition if result.verdict is not None else None
    return RuleTestOut(
        direction=result.direction.value,
        sender=result.envelope.mail_from,
        recipients=list(result.envelope.rcpt_to),
        matched=[RuleHit(rule=m.rule, detail=m.detail) for m in result.matches],
        action=disposition.action.value if disposition else "deliver",
        reason=disposition.reason if disposition else "",
        smtp_reply=disposition.smtp_reply if disposition else None,
        notes=list(result.notes),
    )


@router.get("/organisations/{name}/rules/{rule_name:path}", summary="One rule")
def get_rule(principal: Staff, rt: Rt, name: OrgName, rule_name: str) -> Rule:
    _visible(principal, rt, name)
    rules = rt.policies.get_policy(name).rules
    return rules[_index([{"name": r.name} for r in rules], rule_name)]


@router.put("/organisations/{name}/rules/{rule_name:path}", summary="Replace one rule (it may be renamed)")
def put_rule(principal: Admin, rt: Rt, name: OrgName, rule_name: str, body: Rule) -> Rule:
    _visible(principal, rt, name)
    rules = _rules(rt, name)
    i = _index(rules, rule_name)
    if body.name != rule_name and any(r["name"] == body.name for r in rules):
        raise ApiError(409, "conflict", f"rule {body.name!r} already exists", field="name")

    def put(policy: dict[str, Any]) -> dict[str, Any]:
        new = list(policy["rules"])
        new[i] = body.model_dump(mode="json")
        return {**policy, "rules": new}

    _change_policy(rt, name, principal.name, put)
    return body


@router.delete("/organisations/{name}/rules/{rule_name:path}", status_code=204, summary="Delete one rule")
def delete_rule(principal: Admin, rt: Rt, name: OrgName, rule_name: str) -> None:
    _visible(principal, rt, name)
    i = _index(_rules(rt, name), rule_name)
    _change_policy(rt, name, principal.name, lambda p: {**p, "rules": [r for j, r in enumerate(p["rules"]) if j != i]})


# ---- allow / block lists -----------------------------------------------------------------------


@router.get("/organisations/{name}/lists", summary="Allowed and blocked senders, domains and IPs")
def get_lists(principal: Staff, rt: Rt, name: OrgName) -> SenderLists:
    _visible(principal, rt, name)
    return rt.policies.get_policy(name).lists


@router.put("/organisations/{name}/lists", summary="Replace all the lists")
def put_lists(principal: Admin, rt: Rt, name: OrgName, body: SenderLists) -> SenderLists:
    _visible(principal, rt, name)
    return _change_policy(rt, name, principal.name, lambda p: {**p, "lists": body.model_dump(mode="json")}).lists


@router.post("/organisations/{name}/lists/{list_name}", summary="Add one entry to a list")
def add_list_entry(principal: Admin, rt: Rt, name: OrgName, list_name: ListName, body: ListEntryIn) -> SenderLists:
    _visible(principal, rt, name)

    def add(policy: dict[str, Any]) -> dict[str, Any]:
        lists = dict(policy["lists"])
        entries = list(lists[list_name.value])
        if body.value.strip() not in entries:
            entries.append(body.value.strip())
        lists[list_name.value] = entries
        return {**policy, "lists": lists}

    return _change_policy(rt, name, principal.name, add).lists


@router.delete("/organisations/{name}/lists/{list_name}", summary="Remove one entry from a list")
def remove_list_entry(
    principal: Admin,
    rt: Rt,
    name: OrgName,
    list_name: ListName,
    value: Annotated[str, Query(min_length=1, max_length=320)],
) -> SenderLists:
    _visible(principal, rt, name)
    current = getattr(rt.policies.get_policy(name).lists, list_name.value)
    try:
        normalised = SenderLists.model_validate({list_name.value: [value]})
    except ValidationError as exc:
        reason = validation_messages(exc)[0].partition(": ")[2]
        raise ApiError(422, "invalid", f"value: {reason}", field="value") from None
    wanted = getattr(normalised, list_name.value)[0]
    if wanted not in current:
        raise ApiError(404, "not_found", f"{value!r} is not on {list_name.value}")

    def remove(policy: dict[str, Any]) -> dict[str, Any]:
        lists = dict(policy["lists"])
        lists[list_name.value] = [e for e in lists[list_name.value] if e != wanted]
        return {**policy, "lists": lists}

    return _change_policy(rt, name, principal.name, remove).lists

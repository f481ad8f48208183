"""What a verdict does to a message in enforce mode, as a plan the server carries out.

Pure: bytes and verdict in, a plan out. The caller stores, relays, bounces or quarantines.
In monitor mode the plan is to deliver the message unchanged and only record what would have happened.
"""

from __future__ import annotations

import email
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email import base64mime
from email.message import Message as MimePart
from email.policy import compat32

from mailwarden.enforce.headers import OWN_FIELDS, verdict_headers
from mailwarden.enforce.modify import apply_modifications
from mailwarden.enforce.pool import HIGH_RISK_CODE, HIGH_RISK_POOL
from mailwarden.mail import authresults as authentication_results
from mailwarden.mail import rewrite
from mailwarden.model import Action, Verdict
from mailwarden.model.replies import MESSAGE_DELETED, MESSAGE_REJECTED
from mailwarden.model.rules_outcome import DELIVERING
from mailwarden.model.trace import EventType, RecipientStatus

ALERT_FILENAME = "Malware Alert Text.txt"
_MAX_7BIT_LINE = 998  # RFC 5322 §2.1.1, without the CRLF


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome for one message: what (if anything) to relay, to whom, and what to record."""

    action: Action
    raw: bytes | None  # the bytes to relay; None when nothing is relayed
    deliver_to: tuple[str, ...]
    status: RecipientStatus  # status of the original recipients once the plan is carried out
    event: EventType | None  # the timeline event the action writes (Deliver events come from the relay)
    detail: str = ""
    smtp_reply: str | None = None
    quarantine: bool = False
    bounce: bool = False  # send an NDR to the sender
    notes: tuple[str, ...] = field(default=())  # what the transport rules changed, one line each
    pool: str | None = None  # the delivery pool a transport rule routes the message through
    added: tuple[tuple[str, str], ...] = ()  # recipients a transport rule added: (address, To/Cc/Bcc)


def plan_delivery(
    raw: bytes, verdict: Verdict, recipients: Sequence[str], *, applied: bool, high_risk: bool = False
) -> Plan:
    """The plan for a message that arrived inline. `applied=False` is monitor mode: relay it unchanged.

    Transport rules' changes (headers, recipients, subject, disclaimer, pool) apply last, to a message
    that is still delivered. `high_risk`: outbound spam that leaves through the high-risk pool
    (enforce/pool.py); it is stamped `DI:SO` and that pool wins over one a transport rule chose.
    """
    high_risk = high_risk and applied and verdict.disposition.action in DELIVERING
    plan = _plan(raw, verdict, recipients, applied=applied, delivery=HIGH_RISK_CODE if high_risk else None)
    plan = _with_rules(plan, verdict, applied=applied)
    return replace(plan, pool=HIGH_RISK_POOL) if high_risk and plan.raw is not None else plan


def _with_rules(plan: Plan, verdict: Verdict, *, applied: bool) -> Plan:
    mods = verdict.disposition.modifications
    if not applied or not mods or plan.raw is None or verdict.disposition.action not in DELIVERING:
        return plan
    changed = apply_modifications(plan.raw, mods)
    return replace(
        plan,
        raw=changed.raw,
        deliver_to=tuple(dict.fromkeys((*plan.deliver_to, *(address for address, _ in changed.recipients)))),
        pool=changed.pool,
        added=tuple((a, h) for a, h in changed.recipients if a not in plan.deliver_to),
        notes=(*plan.notes, *changed.notes),
    )


def _plan(raw: bytes, verdict: Verdict, recipients: Sequence[str], *, applied: bool, delivery: str | None) -> Plan:
    rcpts = tuple(recipients)
    if not applied:
        return Plan(Action.DELIVER, raw, rcpts, RecipientStatus.PENDING, None, "monitor mode: delivered unchanged")
    d = verdict.disposition
    stamped = stamp(raw, verdict, delivery=delivery)
    reason = d.reason or verdict.category.value
    match d.action:
        case Action.DELIVER:
            return Plan(d.action, stamped, rcpts, RecipientStatus.PENDING, None)
        case Action.JUNK:
            return Plan(
                d.action,
                stamped,
                rcpts,
                RecipientStatus.PENDING,
                EventType.JUNK,
                f"{reason}: marked for the Junk folder (X-Spam-Flag: YES)",
            )
        case Action.ADD_HEADER:
            name, value = d.header or ("X-This-Is-Spam", "This message appears to be spam.")
            return Plan(
                d.action,
                rewrite.set_header(stamped, name, value),
                rcpts,
                RecipientStatus.PENDING,
                None,
                f"{reason}: header {name} added",
            )
        case Action.PREPEND_SUBJECT:
            prefix = d.subject_prefix or "[SPAM] "
            return Plan(
                d.action,
                rewrite.prepend_subject(stamped, prefix),
                rcpts,
                RecipientStatus.PENDING,
                None,
                f"{reason}: subject prefixed with {prefix.strip()!r}",
            )
        case Action.REDIRECT:
            return Plan(
                d.action,
                stamped,
                tuple(d.redirect_to),
                RecipientStatus.REDIRECTED,
                EventType.REDIRECT,
                f"{reason}: redirected to {', '.join(d.redirect_to)}",
            )
        case Action.QUARANTINE:
            return Plan(d.action, None, (), RecipientStatus.QUARANTINED, EventType.QUARANTINE, reason, quarantine=True)
        case Action.REJECT:
            reply = d.smtp_reply or MESSAGE_REJECTED
            return Plan(d.action, None, (), RecipientStatus.REJECTED, EventType.REJECT, reason, reply, bounce=True)
        case Action.DROP:
            reply = d.smtp_reply or MESSAGE_DELETED
            return Plan(d.action, None, (), RecipientStatus.DROPPED, EventType.DROP, reason, reply)
        case Action.REPLACE_ATTACHMENTS:
            replaced, names = replace_attachments(stamped, d.replace_attachments, d.alert_text or d.reason)
            return Plan(
                d.action,
                replaced,
                rcpts,
                RecipientStatus.PENDING,
                None,
                f"{reason}: replaced {', '.join(names) or 'no attachment'} with {ALERT_FILENAME!r}",
            )
    raise AssertionError(f"unhandled action {d.action}")  # pragma: no cover - Action is a closed set


def stamp(raw: bytes, verdict: Verdict, *, delivery: str | None = None) -> bytes:
    """Our verdict fields and Authentication-Results on top; copies that claim to be ours are removed first."""
    raw = rewrite.remove_headers(raw, OWN_FIELDS)
    fields = verdict_headers(verdict, delivery=delivery)
    results = verdict.auth.get("authentication_results")
    if results:
        ours = (authentication_results.parse(results).authserv_id or "").lower()
        # RFC 8601 §5: an Authentication-Results with our authserv-id that arrived from outside is forged
        raw = rewrite.remove_matching(
            raw,
            "Authentication-Results",
            lambda v: (authentication_results.parse(v).authserv_id or "").lower() == ours,
        )
        fields = [("Authentication-Results", results), *fields]
    return rewrite.add_headers(raw, fields)


def replace_attachments(raw: bytes, filenames: Sequence[str], alert_text: str) -> tuple[bytes, list[str]]:
    """Swap every attachment whose file name is listed for a text part `Malware Alert Text.txt`.

    The message is re-serialised (its content changes anyway); the header block stays as it was.
    """
    wanted = set(filenames)
    msg = email.message_from_bytes(raw, policy=compat32)
    replaced: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name is None or name not in wanted:
            continue
        _make_alert(part, alert_text)
        replaced.append(name)
    if not replaced:
        return raw, replaced
    if not msg.is_multipart():  # the whole message was the attachment: its own header block changed
        return msg.as_bytes(policy=compat32), replaced
    head, sep, _ = rewrite.split_head(raw)
    _, _, new_body = rewrite.split_head(msg.as_bytes(policy=compat32.clone(linesep=sep.decode("ascii"))))
    return head + sep + new_body, replaced


def _make_alert(part: MimePart, text: str) -> None:
    """Turn `part` into the text file `Malware Alert Text.txt` holding `text`, in any language.

    UTF-8 in base64: the part travels through any relay (no 8BITMIME needed) and stays within the line
    length limit whatever the text; plain ASCII text that fits stays readable as 7bit.
    """
    for header in ("Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "Content-Description"):
        del part[header]
    lines = text.splitlines()
    readable = text.isascii() and all(len(line) <= _MAX_7BIT_LINE for line in lines)
    part["Content-Type"] = f'text/plain; charset="{"us-ascii" if readable else "utf-8"}"'
    part["Content-Disposition"] = f'attachment; filename="{ALERT_FILENAME}"'
    part["Content-Transfer-Encoding"] = "7bit" if readable else "base64"
    if readable:  # the generator writes it line by line with the message's own line ending
        part.set_payload("\n".join(lines) + "\n")
    else:  # text in its canonical form (RFC 2046 §4.1.1: CRLF line ends) inside the base64
        part.set_payload(base64mime.body_encode(("\r\n".join(lines) + "\r\n").encode("utf-8")))

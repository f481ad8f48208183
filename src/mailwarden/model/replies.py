"""The SMTP replies of policy actions: what a rejected or deleted message is answered or recorded with.

These are the texts a verdict carries (`Disposition.smtp_reply`) and the trace records; an NDR
quotes them. They are not the ingress's protocol replies, which stay in `ingest/replies.py`.
"""

from __future__ import annotations

# RFC 3463 X.7.1: delivery not authorised, message refused (Exchange's default for a rule's reject)
POLICY_REJECT_STATUS = "5.7.1"

# the default reject, when neither the filters nor a rule named their own text
MESSAGE_REJECTED = f"550 {POLICY_REJECT_STATUS} Message rejected by policy"

# a dropped (deleted) message: Exchange Online's wording, recorded with the Drop event, no NDR sent
MESSAGE_DELETED = "550 4.3.2 QUEUE.TransportAgent; message deleted by transport agent"


# RFC 7372 X.7.26: multiple authentication checks failed (a DMARC failure is SPF and DKIM both unaligned)
DMARC_REJECT_STATUS = "5.7.26"


def dmarc_reject(domain: str) -> str:
    """The reply of a message refused because its From domain failed DMARC and publishes p=reject."""
    return (
        f"550 {DMARC_REJECT_STATUS} Message rejected: {domain or 'the From domain'} fails DMARC and publishes p=reject"
    )


def rule_reject(status: str, text: str) -> str:
    """The reply of a transport rule's `reject: {status, text}`: 550, its enhanced status, its NDR text."""
    return f"550 {status} {text}"

"""The header fields a scanned message carries: EOP-style antispam stamp, SpamAssassin-style flags,
and the explainable report (symbols and weights).

The antispam stamp and the report describe the verdict whatever the action. The SpamAssassin-style
flags are the junk signal mail stores act on (Sieve, procmail, Exchange rules): they say `YES` only when
the action is `junk`, because every other delivering action (tag, prefix, redirect) goes to the Inbox.
"""

from __future__ import annotations

from mailwarden.model import Action, Category, Direction, Verdict
from mailwarden.model.scoring import SPAM_SCORE

ANTISPAM = "X-Mailwarden-Antispam"
REPORT = "X-Mailwarden-Report"
SPAM_FLAG = "X-Spam-Flag"
SPAM_STATUS = "X-Spam-Status"
# Fields we write; any copy that arrives from outside is removed first so nobody can forge a verdict.
OWN_FIELDS = (ANTISPAM, REPORT, SPAM_FLAG, SPAM_STATUS)

_DIR = {Direction.INBOUND: "INB", Direction.OUTBOUND: "OUT", Direction.INTERNAL: "INT"}
_CAT = {
    Category.CLEAN: "NONE",
    Category.SPAM: "SPM",
    Category.HIGH_CONFIDENCE_SPAM: "HSPM",
    Category.BULK: "BULK",
    Category.PHISH: "PHSH",
    Category.HIGH_CONFIDENCE_PHISH: "HPHSH",
    Category.MALWARE: "MALW",
    Category.RULE: "RULE",
    Category.BLOCKED: "BLK",
    Category.INTERNAL: "NONE",
    Category.SCAN_ERROR: "ERR",
}


def is_spam(verdict: Verdict) -> bool:
    return verdict.category not in (Category.CLEAN, Category.INTERNAL, Category.SCAN_ERROR)


def filter_value(verdict: Verdict) -> str:
    """SFV: how the spam filter came to its verdict (EOP's values: SKA/SKB sender lists, SKN bypass)."""
    codes = {f.code for f in verdict.findings}
    if "SENDER_BLOCKED" in codes:
        return "SKB"
    if verdict.scl == -1:
        return "SKA" if "SENDER_ALLOWED" in codes else "SKN"
    return "SPM" if is_spam(verdict) else "NSPM"


def is_junk(verdict: Verdict) -> bool:
    """Whether the message goes to the Junk folder: only the `junk` action says so."""
    return verdict.disposition.action is Action.JUNK


def verdict_headers(verdict: Verdict, *, delivery: str | None = None) -> list[tuple[str, str]]:
    """The fields to stamp on a message that leaves mailwarden (enforce mode). `delivery` is EOP's DI
    code of the pool the message leaves through, when that says something (`SO`: the high-risk pool)."""
    symbols = [f for f in verdict.findings if f.score]
    antispam = (
        f"DIR:{_DIR[verdict.direction]};SFV:{filter_value(verdict)};SCL:{verdict.scl};BCL:{verdict.bcl};"
        f"CAT:{_CAT[verdict.category]};PHISH:{verdict.phish.value}"
    )
    if delivery:
        antispam += f";DI:{delivery}"
    report = f"score={verdict.score:.2f}; symbols=" + (" ".join(f"{f.code}({f.score:.2f})" for f in symbols) or "none")
    tests = ",".join(f.code for f in symbols) or "none"
    flag = "YES" if is_junk(verdict) else "NO"
    yes_no = "Yes" if is_junk(verdict) else "No"
    status = f"{yes_no}, score={verdict.score:.1f} required={SPAM_SCORE:.1f} tests={tests}"
    return [(ANTISPAM, antispam), (REPORT, report), (SPAM_FLAG, flag), (SPAM_STATUS, status)]

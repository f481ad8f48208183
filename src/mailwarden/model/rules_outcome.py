"""What the matched rules mean for the verdict: the rules' own action, their changes, and precedence.

Used by `pipeline/decide.py`, the one place that decides. Precedence (docs/rules.md):

1. a connection-level block (IP block list) ends everything before rules run;
2. a malware verdict keeps its action (quarantine / replace attachments): rules cannot release malware;
3. otherwise the stronger of the rules' action and the filters' action wins, by `STRENGTH`
   (reject > delete > quarantine > redirect > junk > header / subject tags > deliver); a tie goes
   to the rule. When a rule's action wins the category is `rule`.

Changes that keep the message (headers, recipients, disclaimer, delivery pool, subject) ride along on
whatever action wins and are applied only when that action delivers; incident reports go out whatever
the action. Audit-mode rules never contribute anything but their record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailwarden.model import Action, Category, Disposition
from mailwarden.model.replies import MESSAGE_DELETED, rule_reject
from mailwarden.model.rules import Rule
from mailwarden.model.verdict import Modification, ModificationKind

STRENGTH: dict[Action, int] = {
    Action.DELIVER: 0,
    Action.ADD_HEADER: 1,
    Action.PREPEND_SUBJECT: 1,
    Action.REPLACE_ATTACHMENTS: 1,
    Action.JUNK: 2,
    Action.REDIRECT: 3,
    Action.QUARANTINE: 4,
    Action.DROP: 5,
    Action.REJECT: 6,
}

# actions after which the message still reaches someone: the rules' changes apply to it
DELIVERING = frozenset(
    {
        Action.DELIVER,
        Action.JUNK,
        Action.ADD_HEADER,
        Action.PREPEND_SUBJECT,
        Action.REDIRECT,
        Action.REPLACE_ATTACHMENTS,
    }
)


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """A rule that matched, and why (each condition's reason)."""

    rule: Rule
    reasons: tuple[str, ...]

    @property
    def audit(self) -> bool:
        return self.rule.mode.value == "audit"


@dataclass(frozen=True, slots=True)
class RulesOutcome:
    """The rules stage's result, shared with `decide` through `ScanContext.facts["rules"]`."""

    matched: tuple[MatchedRule, ...] = ()
    scl: int | None = None  # the SCL the last enforce rule set
    dlp: tuple[dict[str, Any], ...] = ()  # sensitive information found, values redacted

    @property
    def enforced(self) -> tuple[MatchedRule, ...]:
        return tuple(m for m in self.matched if not m.audit)

    def terminal(self) -> Disposition | None:
        """The strongest of the enforce rules' own actions (reject / delete / quarantine / redirect)."""
        best: Disposition | None = None
        for m in self.enforced:
            d = rule_action(m.rule)
            if d is not None and (best is None or STRENGTH[d.action] > STRENGTH[best.action]):
                best = d
        return best

    def modifications(self) -> tuple[Modification, ...]:
        return tuple(mod for m in self.enforced for mod in rule_modifications(m.rule))


def rule_action(rule: Rule) -> Disposition | None:
    a = rule.actions
    reason = f"transport rule {rule.name!r}"
    if a.reject is not None:
        return Disposition(Action.REJECT, reason=reason, smtp_reply=rule_reject(a.reject.status, a.reject.text))
    if a.delete:
        return Disposition(Action.DROP, reason=reason, smtp_reply=MESSAGE_DELETED)
    if a.quarantine:
        return Disposition(Action.QUARANTINE, reason=reason)
    if a.redirect_to:
        return Disposition(Action.REDIRECT, reason=reason, redirect_to=a.redirect_to)
    return None


def rule_modifications(rule: Rule) -> list[Modification]:
    """The changes a rule makes to a message that is still delivered, in the order they apply."""
    a, name = rule.actions, rule.name
    mods = [Modification(ModificationKind.REMOVE_HEADER, name, h) for h in a.remove_header]
    mods += [Modification(ModificationKind.SET_HEADER, name, h.name, h.value) for h in a.set_header]
    mods += [Modification(ModificationKind.ADD_HEADER, name, h.name, h.value) for h in a.add_header]
    for field, addresses in (("To", a.add_to), ("Cc", a.add_cc), ("Bcc", a.add_bcc)):
        mods += [Modification(ModificationKind.ADD_RECIPIENT, name, field, addr) for addr in addresses]
    if a.prepend_subject:
        mods.append(Modification(ModificationKind.PREPEND_SUBJECT, name, value=a.prepend_subject))
    if a.append_disclaimer is not None:
        d = a.append_disclaimer
        mods.append(Modification(ModificationKind.DISCLAIMER, name, value=d.text, html=d.html or ""))
    if a.delivery_pool:
        mods.append(Modification(ModificationKind.DELIVERY_POOL, name, value=a.delivery_pool))
    mods += [Modification(ModificationKind.INCIDENT_REPORT, name, value=addr) for addr in a.incident_report_to]
    return mods


def combine(category: Category, disposition: Disposition, rules: RulesOutcome) -> tuple[Category, Disposition]:
    """The verdict's category and disposition once the rules are taken into account (precedence above)."""
    mods = rules.modifications()
    terminal = rules.terminal()
    wins = terminal is not None and STRENGTH[terminal.action] >= STRENGTH[disposition.action]
    if category is not Category.MALWARE and terminal is not None and wins:
        category, disposition = Category.RULE, terminal
    if mods:
        disposition = _with(disposition, mods)
    return category, disposition


def _with(d: Disposition, mods: Sequence[Modification]) -> Disposition:
    return Disposition(
        d.action,
        reason=d.reason,
        header=d.header,
        subject_prefix=d.subject_prefix,
        redirect_to=d.redirect_to,
        replace_attachments=d.replace_attachments,
        alert_text=d.alert_text,
        smtp_reply=d.smtp_reply,
        applied=d.applied,
        modifications=(*d.modifications, *mods),
    )

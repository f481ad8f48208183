"""A rule set compiled once per policy: conditions as small checks, and an index of cheap preconditions.

The index keeps 1,000 rules from being evaluated one by one. Each rule gets a *gate*: one of its own
conditions that must match for the rule to match at all and that can be answered for every rule at
once — a sender or recipient domain or address (a dictionary look-up) or words and patterns (one
combined RE2 scan per text scope). Only rules whose gate opened, and rules that have no gate, are then
evaluated in full, in priority order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailwarden.model import Direction
from mailwarden.model.envelope import domain_of
from mailwarden.model.rules import Conditions, Location, Rule, RuleMode, RuleScope, SensitiveInfo
from mailwarden.model.rules_outcome import MatchedRule
from mailwarden.pipeline.dlp import count_at_least
from mailwarden.pipeline.rules.facts import MessageFacts
from mailwarden.pipeline.rules.terms import Terms

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network  # a `sender_ip_in` range
# A check answers with why it matched ("subject contains 'secret'") or None.
Check = Callable[[MessageFacts], str | None]


@dataclass(frozen=True, slots=True)
class Gate:
    kind: str  # "sender_domain", "sender_address", "recipient_domain", "recipient_address" or "terms"
    keys: frozenset[str] = frozenset()
    scope: str = ""
    ids: frozenset[int] = frozenset()


@dataclass
class CompiledRule:
    rule: Rule
    order: int
    conditions: list[tuple[str, Check]]
    exceptions: list[tuple[str, Check]]
    gate: Gate | None
    needs_dlp: bool


@dataclass
class CompiledRules:
    terms: Terms
    rules: dict[Direction, list[CompiledRule]] = field(default_factory=dict)
    # per direction: gate key → rule positions
    by_sender_domain: dict[Direction, dict[str, list[int]]] = field(default_factory=dict)
    by_sender_address: dict[Direction, dict[str, list[int]]] = field(default_factory=dict)
    by_recipient_domain: dict[Direction, dict[str, list[int]]] = field(default_factory=dict)
    by_recipient_address: dict[Direction, dict[str, list[int]]] = field(default_factory=dict)
    by_term: dict[Direction, dict[str, dict[int, list[int]]]] = field(default_factory=dict)
    ungated: dict[Direction, list[int]] = field(default_factory=dict)

    def needs_dlp(self, direction: Direction) -> bool:
        return any(r.needs_dlp for r in self.rules.get(direction, ()))

    def candidates(self, direction: Direction, facts: MessageFacts) -> list[CompiledRule]:
        """Rules whose gate is open for this message, in the order they run."""
        rules = self.rules.get(direction, [])
        if not rules:
            return []
        picked: set[int] = set(self.ungated[direction])
        for domain in facts.sender_domains:
            picked.update(self.by_sender_domain[direction].get(domain, ()))
        for address in facts.senders:
            picked.update(self.by_sender_address[direction].get(address, ()))
        for domain in facts.recipient_domains:
            picked.update(self.by_recipient_domain[direction].get(domain, ()))
        for address in facts.recipients:
            picked.update(self.by_recipient_address[direction].get(address, ()))
        for scope, by_id in self.by_term[direction].items():
            for term in facts.hits(scope):
                picked.update(by_id.get(term, ()))
        return [rules[i] for i in sorted(picked)]

    def evaluate(self, direction: Direction, facts: MessageFacts) -> list[MatchedRule]:
        """The rules that match, in order, honouring stop_processing and terminal actions.

        Audit rules are recorded and never stop later rules. An enforce rule's SCL is visible to the
        rules after it.
        """
        hits = []
        for compiled in self.candidates(direction, facts):
            reasons = match(compiled, facts)
            if reasons is None:
                continue
            hits.append(MatchedRule(compiled.rule, reasons))
            rule = compiled.rule
            if rule.mode is RuleMode.AUDIT:
                continue
            if rule.actions.set_scl is not None:
                facts.scl = rule.actions.set_scl
            # a rejected or deleted message is gone: later rules never see it (as in Exchange)
            if rule.stop_processing or rule.actions.reject is not None or rule.actions.delete:
                break
        return hits


def match(compiled: CompiledRule, facts: MessageFacts) -> tuple[str, ...] | None:
    """Why the rule matches (every condition), or None (a condition failed or an exception matched)."""
    reasons = []
    for _, check in compiled.conditions:
        why = check(facts)
        if why is None:
            return None
        reasons.append(why)
    for _, check in compiled.exceptions:
        if check(facts) is not None:
            return None
    return tuple(reasons) or ("no conditions: every message",)


# ---- compiling -----------------------------------------------------------------------------------


def compile_rules(rules: Iterable[Rule]) -> CompiledRules:
    terms = Terms()
    out = CompiledRules(terms)
    enabled = [r for r in rules if r.enabled]
    ordered = sorted(enumerate(enabled), key=lambda pair: (pair[1].priority, pair[0]))
    compiled = []
    for order, (_, rule) in enumerate(ordered):
        conditions = _checks(rule.conditions, terms)
        exceptions = _checks(rule.exceptions, terms)
        needs_dlp = bool(rule.conditions.sensitive_info or rule.exceptions.sensitive_info)
        compiled.append(CompiledRule(rule, order, conditions, exceptions, _gate(rule.conditions, terms), needs_dlp))
    terms.compile()
    for direction in (Direction.INBOUND, Direction.OUTBOUND):
        scope = RuleScope(direction.value)
        mine = [c for c in compiled if c.rule.direction in (scope, RuleScope.BOTH)]
        out.rules[direction] = mine
        sd: dict[str, list[int]] = {}
        sa: dict[str, list[int]] = {}
        rd: dict[str, list[int]] = {}
        ra: dict[str, list[int]] = {}
        bt: dict[str, dict[int, list[int]]] = {}
        ungated: list[int] = []
        for pos, c in enumerate(mine):
            gate = c.gate
            if gate is None:
                ungated.append(pos)
                continue
            if gate.kind == "terms":
                by_id = bt.setdefault(gate.scope, {})
                for term in gate.ids:
                    by_id.setdefault(term, []).append(pos)
                continue
            table = {"sender_domain": sd, "sender_address": sa, "recipient_domain": rd, "recipient_address": ra}[
                gate.kind
            ]
            for key in gate.keys:
                table.setdefault(key, []).append(pos)
        out.by_sender_domain[direction] = sd
        out.by_sender_address[direction] = sa
        out.by_recipient_domain[direction] = rd
        out.by_recipient_address[direction] = ra
        out.by_term[direction] = bt
        out.ungated[direction] = ungated
    return out


def _gate(c: Conditions, terms: Terms) -> Gate | None:
    """The cheapest condition of a rule that every match needs, or None (the rule is always evaluated)."""
    if c.sender_address:
        return Gate("sender_address", frozenset(c.sender_address))
    if c.sender_domain:
        return Gate("sender_domain", frozenset(c.sender_domain))
    if c.recipient_address:
        return Gate("recipient_address", frozenset(c.recipient_address))
    if c.recipient_domain:
        return Gate("recipient_domain", frozenset(c.recipient_domain))
    for scope, words, patterns in (
        ("subject", c.subject_contains, c.subject_matches),
        ("subject_or_body", c.subject_or_body_contains, ()),
        ("body", c.body_contains, c.body_matches),
    ):
        # words and patterns of one scope are two conditions: either one alone is a valid gate
        if words:
            scope, ids = terms.words(scope, words)
            return Gate("terms", scope=scope, ids=ids)
        if patterns:
            scope, ids = terms.patterns(scope, patterns)
            return Gate("terms", scope=scope, ids=ids)
    return None


def _quote(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _checks(c: Conditions, terms: Terms) -> list[tuple[str, Check]]:
    """One check per condition that is set, in the order their reasons are shown."""
    checks = _Checks(terms)
    _address_checks(c, checks)
    _location_checks(c, checks)
    _header_checks(c, checks)
    _text_checks(c, checks)
    _attachment_checks(c, checks)
    _message_checks(c, checks)
    return checks.checks


class _Checks:
    """The checks of one rule's conditions (or exceptions) as they are compiled."""

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.checks: list[tuple[str, Check]] = []

    def add(self, name: str, check: Check) -> None:
        self.checks.append((name, check))

    def in_set(self, name: str, values: tuple[str, ...], attr: str) -> None:
        """Any of the facts' `attr` values (addresses or domains) is one of `values`."""
        if values:
            self.add(name, _in_set(name, frozenset(values), attr))

    def words(self, name: str, scope: str, values: tuple[str, ...]) -> None:
        if values:
            self.add(name, _scoped(name, scope, {self.terms.word_id(scope, v): v for v in values}))

    def patterns(self, name: str, scope: str, values: tuple[str, ...]) -> None:
        if values:
            self.add(name, _scoped(name, scope, {self.terms.pattern_id(scope, v): v for v in values}))


def _in_set(name: str, wanted: frozenset[str], attr: str) -> Check:
    def check(f: MessageFacts) -> str | None:
        found = sorted(set(getattr(f, attr)) & wanted)
        return f"{name} {found[0]!r}" if found else None

    return check


def _scoped(name: str, scope: str, shown: dict[int, str]) -> Check:
    """Words or patterns of one text scope, answered from the combined scan's hits."""
    ids = frozenset(shown)

    def check(f: MessageFacts) -> str | None:
        found = sorted(f.hits(scope) & ids)
        return f"{name} {_quote(shown[i] for i in found)}" if found else None

    return check


def _address_checks(c: Conditions, checks: _Checks) -> None:
    checks.in_set("sender_address", c.sender_address, "senders")
    checks.in_set("sender_domain", c.sender_domain, "sender_domains")
    checks.patterns("sender_matches", "sender", c.sender_matches)
    checks.in_set("recipient_address", c.recipient_address, "recipients")
    checks.in_set("recipient_domain", c.recipient_domain, "recipient_domains")
    checks.patterns("recipient_matches", "recipient", c.recipient_matches)


def _location_checks(c: Conditions, checks: _Checks) -> None:
    if c.sender_location is not None:
        checks.add("sender_location", _sender_location(c.sender_location is Location.INSIDE))
    if c.recipient_location is not None:
        checks.add("recipient_location", _recipient_location(c.recipient_location is Location.INSIDE))


def _sender_location(inside: bool) -> Check:
    def sender_location(f: MessageFacts) -> str | None:
        own = any(domain_of(a) in f.org_domains for a in f.senders[:1])
        return f"sender is {'inside' if own else 'outside'} the organisation" if own == inside else None

    return sender_location


def _recipient_location(want_inside: bool) -> Check:
    def recipient_location(f: MessageFacts) -> str | None:
        for r in f.recipients:
            if (domain_of(r) in f.org_domains) == want_inside:
                return f"recipient {r!r} is {'inside' if want_inside else 'outside'} the organisation"
        return None

    return recipient_location


def _header_checks(c: Conditions, checks: _Checks) -> None:
    if c.header_exists:
        names = c.header_exists

        def header_exists(f: MessageFacts) -> str | None:
            found = [n for n in names if n in f.message.email]
            return f"header {found[0]} exists" if found else None

        checks.add("header_exists", header_exists)
    if c.header_contains is not None:
        checks.words("header_contains", f"header:{c.header_contains.name.lower()}", c.header_contains.words)
    if c.header_matches is not None:
        checks.patterns("header_matches", f"header:{c.header_matches.name.lower()}", c.header_matches.patterns)


def _text_checks(c: Conditions, checks: _Checks) -> None:
    checks.words("subject_contains", "subject", c.subject_contains)
    checks.patterns("subject_matches", "subject", c.subject_matches)
    checks.words("body_contains", "body", c.body_contains)
    checks.patterns("body_matches", "body", c.body_matches)
    checks.words("subject_or_body_contains", "subject_or_body", c.subject_or_body_contains)


def _attachment_checks(c: Conditions, checks: _Checks) -> None:
    checks.patterns("attachment_name_matches", "attachment_name", c.attachment_name_matches)
    if c.attachment_extension:
        checks.add("attachment_extension", _attachment_extension(frozenset(c.attachment_extension)))
    if c.attachment_type:
        checks.add("attachment_type", _attachment_type(frozenset(t.lower() for t in c.attachment_type)))
    if c.attachment_size_over is not None:
        checks.add("attachment_size_over", _attachment_size(c.attachment_size_over))
    checks.words("attachment_contains", "attachment", c.attachment_contains)
    checks.patterns("attachment_matches", "attachment", c.attachment_matches)


def _attachment_extension(exts: frozenset[str]) -> Check:
    def attachment_extension(f: MessageFacts) -> str | None:
        found = [a.filename for a in f.message.attachments if a.extension in exts]
        return f"attachment {found[0]!r} has extension {_quote(sorted(exts))}" if found else None

    return attachment_extension


def _attachment_type(types: frozenset[str]) -> Check:
    def attachment_type(f: MessageFacts) -> str | None:
        # a MIME type ("application/zip") or its subtype alone ("zip")
        found = [a for a in f.message.attachments if {a.real_type, a.real_type.rsplit("/", 1)[-1]} & types]
        return f"attachment {found[0].filename!r} is really {found[0].real_type}" if found else None

    return attachment_type


def _attachment_size(limit: int) -> Check:
    def attachment_size(f: MessageFacts) -> str | None:
        found = [a for a in f.message.attachments if a.size > limit]
        return f"attachment {found[0].filename!r} is {found[0].size} bytes (over {limit})" if found else None

    return attachment_size


def _message_checks(c: Conditions, checks: _Checks) -> None:
    if c.message_size_over is not None:
        checks.add("message_size_over", _message_size(c.message_size_over))
    if c.sender_ip_in:
        checks.add("sender_ip_in", _sender_ip(tuple(ipaddress.ip_network(n) for n in c.sender_ip_in)))
    if c.scl_at_least is not None:
        checks.add("scl_at_least", _scl(c.scl_at_least))
    if c.sensitive_info:
        checks.add("sensitive_info", _sensitive(c.sensitive_info))


def _message_size(size_limit: int) -> Check:
    def message_size(f: MessageFacts) -> str | None:
        size = f.message.size
        return f"message is {size} bytes (over {size_limit})" if size > size_limit else None

    return message_size


def _sender_ip(networks: tuple[IPNetwork, ...]) -> Check:
    def sender_ip(f: MessageFacts) -> str | None:
        ip = f.ip
        if ip is None:
            return None
        for net in networks:
            if ip.version == net.version and ip in net:
                return f"sending IP {ip} in {net}"
        return None

    return sender_ip


def _scl(floor: int) -> Check:
    def scl(f: MessageFacts) -> str | None:
        return f"SCL {f.scl} at or above {floor}" if f.scl >= floor else None

    return scl


def _sensitive(wanted: tuple[SensitiveInfo, ...]) -> Check:
    def sensitive(f: MessageFacts) -> str | None:
        for want in wanted:
            count = count_at_least(f.sensitive, want.type, want.min_confidence.value)
            if count >= want.min_count:
                return f"sensitive information {want.type}: {count} at {want.min_confidence.value} confidence or above"
        return None

    return sensitive

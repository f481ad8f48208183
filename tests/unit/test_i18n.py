"""The gettext catalogues (mailwarden.i18n): each parses, Japanese has words for every key with the same
placeholders as English, and every key the code uses — literal ones found by Babel's extraction
(contrib/messages.py, babel.cfg), and the ones built from enum values, enumerated from the enums — has them."""

from __future__ import annotations

import importlib.util
import string
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.pofile import read_po

from mailwarden.console.policy_form import FIELDS, SECTIONS
from mailwarden.console.timeline import SHAPES
from mailwarden.deliver.queue import JobKind as DeliveryKind
from mailwarden.i18n import LANGUAGES, Translator, catalogue, catalogue_path, words
from mailwarden.model.accounts import Role, Scope
from mailwarden.model.clawback import ClawbackAction, ItemStatus, JobKind
from mailwarden.model.direction import Direction
from mailwarden.model.org import ConnectionMode, Mode
from mailwarden.model.provider import Agreement, Provider, ProviderCategory
from mailwarden.model.quarantine import Reason, Status
from mailwarden.model.trace import EventType, RecipientStatus
from mailwarden.model.verdict import Action, Category
from mailwarden.pipeline.dlp.types import BUILTIN_NAMES
from mailwarden.pipeline.registry import BUILTIN_STAGES
from mailwarden.pipeline.spam.learning import Learnt
from mailwarden.quarantine.digest import LINK_WORDS, REASON_WORDS, LinkAction
from mailwarden.service.message_actions import ListAction
from mailwarden.service.period_report import ReportTable
from mailwarden.store.connections import BlockReason
from mailwarden.store.hunts import HuntKind, HuntState
from mailwarden.store.preview import ENFORCED_ACTIONS

ROOT = Path(__file__).resolve().parents[2]
FIELD_NAMES = string.Formatter()


def _messages_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contrib_messages", ROOT / "contrib" / "messages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _values(*sets: Iterable[object]) -> list[str]:
    return [str(v.value if isinstance(v, Enum) else v) for values in sets for v in values]


def dynamic_keys() -> set[str]:
    """The keys the code builds at run time from a closed set, each set enumerated from its source."""
    families: dict[str, list[str]] = {
        "enum.category.": _values(Category),
        "enum.action.": _values(Action),
        "enum.direction.": _values(Direction),
        "enum.mode.": _values(Mode),
        "enum.connection.": _values(ConnectionMode),
        "enum.source.": ["smtp", "journal", "scan"],  # MessageSummary.source
        "enum.event.": _values(EventType),
        "enum.recipient_status.": _values(RecipientStatus),
        "enum.quarantine_reason.": _values(Reason),
        "enum.quarantine_status.": _values(Status),
        "enum.clawback_status.": _values(ItemStatus),
        "enum.clawback_kind.": _values(JobKind),
        "enum.role.": _values(Role),
        "enum.scope.": _values(Scope),
        "enum.hunt_state.": _values(HuntState),
        "enum.stage.": sorted(BUILTIN_STAGES),
        "enum.dlp_type.": sorted(BUILTIN_NAMES),
        "clawback.action.": _values(ClawbackAction),
        "reports.table.": _values(ReportTable),
        "reports.category.": _values(Category),
        "reports.action.": _values(Action),
        "reports.direction.": _values(Direction),
        "reports.reason.": _values(BlockReason),
        "reports.col.": [
            "day",
            "total",
            "group",
            "item",
            "count",
            "sender",
            "recipient",
            "domain",
            "messages",
            "ip",
            "reason",
            "connections",
        ],
        "reports.group.": ["messages", "category", "action", "direction", "refused"],
        "provider.name.": _values(Provider),
        "provider.cat.": _values(ProviderCategory),
        "provider.agreement.": _values(Agreement),
        "preview.action.": _values(ENFORCED_ACTIONS),
        "actions.": _values(ListAction, Learnt, ["report_spam", "report_ham"]),
        "lists.": [action.list_name for action in ListAction] + ["allowed_domains", "ip_allow", "ip_block"],
        "link.confirm.": _values(LinkAction),
        "link.go.": _values(LinkAction),
        "link.done.": _values([LinkAction.RELEASE, LinkAction.REQUEST]),
        "link.": ["invalid", "expired", "used"],  # LinkError.reason
        "ops.kind.": _values(DeliveryKind),
        "hunts.": _values(HuntKind, ["senders", "domains", "urls", "sha256"]),
        "trace.": ["direction", "category", "action"],
        "pform.s.": [section for section, _ in SECTIONS],
        "pform.sh.": [section for section, _ in SECTIONS],
        # a field without its own label is named after the verdict it is set for
        "pform.v.": sorted({p.rsplit(".", 1)[1] for p in FIELDS if f"pform.f.{p}" not in catalogue("en")}),
        "pform.o.": sorted({o for f in FIELDS.values() for o in f.options}),
    }
    keys = {prefix + value for prefix, values in families.items() for value in values}
    timeline = {key for _, key, _ in SHAPES} | {"timeline.listener", "timeline.client"}
    return keys | timeline | set(REASON_WORDS.values()) | set(LINK_WORDS.values())


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in FIELD_NAMES.parse(text) if name}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_parses_without_fuzzy_or_empty_entries(language: str) -> None:
    with catalogue_path(language).open("rb") as po:
        parsed = read_po(po, locale=language, abort_invalid=True)
    entries = [m for m in parsed if m.id]
    assert len(entries) > 500
    assert [m.id for m in entries if m.fuzzy] == []
    assert [m.id for m in entries if not m.string] == []
    assert len({m.id for m in entries}) == len(entries)


def test_japanese_has_every_english_key_with_the_same_placeholders() -> None:
    english, japanese = catalogue("en"), catalogue("ja")
    assert sorted(set(english) - set(japanese)) == []
    assert sorted(set(japanese) - set(english)) == []  # a key English lost is obsolete, not live
    assert [k for k in english if placeholders(english[k]) != placeholders(japanese[k])] == []


def test_every_key_the_code_uses_has_words_in_every_language() -> None:
    used = _messages_script().extracted()
    # the extraction sees the templates, the console's Python, Refusal keys and words() below the console
    assert {"nav.dashboard", "ops.retried", "not_found", "digest.intro", "report_mail.subject"} <= set(used)
    keys = set(used) | dynamic_keys()
    for language in LANGUAGES:
        words_of = catalogue(language)
        missing = sorted(k for k in keys if not words_of.get(k))
        assert missing == [], f"{language}: no words for {missing}"
    english, japanese = catalogue("en"), catalogue("ja")
    assert [k for k in keys if placeholders(english[k]) != placeholders(japanese[k])] == []


def test_a_translator_fills_placeholders_and_falls_back_to_english_then_the_key() -> None:
    assert Translator("ja")("ops.retried", job="J1") == words("ops.retried", "ja", job="J1")
    assert "J1" in Translator("ja")("ops.retried", job="J1")
    assert Translator("xx")("nav.trace") == "Message trace"
    assert Translator("ja")("no.such.key") == "no.such.key"


def test_an_enum_value_reads_in_the_language_and_an_unknown_one_as_itself() -> None:
    t = Translator("ja")
    assert t.enum("category", Category.HIGH_CONFIDENCE_PHISH) == "高確度フィッシング"
    assert t.enum("event", "receive") == "受信"
    assert Translator("en").enum("event", EventType.RECEIVE) == "receive"  # English pages read as before
    assert t.enum("stage", "custom_stage") == "custom_stage"

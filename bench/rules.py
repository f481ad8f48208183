"""Transport rules benchmark: 1,000 generated rules plus every DLP type over the shared corpus.

    .venv-test/bin/python bench/rules.py [--corpus ../shared/corpus] [--sets spamassassin,...] [--limit N]
                                         [--rules 1000] [--quick]

The rule set is a realistic mix: sender / recipient domains and addresses, subject, body and header
words (English and Japanese), patterns, attachment names, extensions and types, sizes, IP ranges,
exceptions, and one rule per sensitive information type. Each message is parsed first (the MIME tree
and subject: every stage shares them, so they are not the rules' cost), then the rules stage runs on it
and its CPU time is measured (time.process_time, not wall-clock). "Added" is that CPU time per message:
text normalisation, extraction, DLP and rule evaluation. Prints messages/s of CPU, median, p95 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

from mailwarden.model import Direction, Domain, Envelope, Message, Organisation, Policy
from mailwarden.pipeline.dlp import BUILTIN_NAMES
from mailwarden.pipeline.rules.stage import TransportRules
from mailwarden.pipeline.stage import ScanContext

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
QUICK_MESSAGES, QUICK_RULES = 40, 50
ORG = Organisation("bench", (Domain("example.com"),))
WORDS = [
    *[
        "invoice",
        "payment",
        "urgent",
        "confidential",
        "password",
        "wire",
        "transfer",
        "account",
        "verify",
        "lottery",
        "winner",
        "prize",
    ],
    *[
        "contract",
        "salary",
        "payroll",
        "merger",
        "acquisition",
        "board",
        "meeting",
        "quarterly",
        "report",
        "budget",
        "forecast",
    ],
    *["社外秘", "機密", "請求書", "振込", "パスワード", "至急", "契約書", "給与", "マイナンバー", "個人情報"],
]


def generate_rules(n: int, seed: int = 7, *, dlp: bool = True) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rules: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = [
        {"add_header": [{"name": "X-Rule", "value": "1"}]},
        {"prepend_subject": "[EXT] "},
        {"set_scl": 6},
        {"quarantine": True},
        {"incident_report_to": ["secops@example.com"]},
        {"append_disclaimer": {"text": "Confidential"}},
    ]

    def word() -> str:
        return rnd.choice(WORDS) + (str(rnd.randrange(1000)) if rnd.random() < 0.5 else "")

    for i in range(n):
        kind = i % 12
        cond: dict[str, Any]
        if kind == 0:
            cond = {"sender_domain": [f"partner{rnd.randrange(5000)}.example", f"vendor{i}.test"]}
        elif kind == 1:
            cond = {"recipient_address": [f"user{rnd.randrange(5000)}@example.com"]}
        elif kind == 2:
            cond = {"subject_contains": [word(), word()]}
        elif kind == 3:
            cond = {"body_contains": [word(), word(), word()], "sender_location": "outside"}
        elif kind == 4:
            cond = {"subject_matches": [rf"\b{rnd.choice(WORDS)}[ -]?\d{{{rnd.randrange(2, 6)}}}\b"]}
        elif kind == 5:
            cond = {"body_matches": [rf"ref(erence)?[:#]\s*[a-z]{{2}}{i}\d+"]}
        elif kind == 6:
            cond = {"header_contains": {"name": "X-Mailer", "words": [f"mailer{i}"]}}
        elif kind == 7:
            cond = {
                "recipient_domain": [f"dept{rnd.randrange(300)}.example.com"],
                "attachment_extension": ["exe", "js"],
            }
        elif kind == 8:
            cond = {"subject_or_body_contains": [word()], "message_size_over": rnd.randrange(10_000, 200_000)}
        elif kind == 9:
            cond = {"sender_address": [f"ceo{i}@example.net"], "attachment_size_over": 1_000_000}
        elif kind == 10:
            cond = {"subject_contains": [word()], "attachment_name_matches": [r"invoice.*\.(zip|html?)$"]}
        else:
            cond = {"sender_ip_in": [f"203.0.{rnd.randrange(256)}.0/24"], "body_contains": [word()]}
        rule: dict[str, Any] = {
            "name": f"rule-{i:04d}",
            "priority": rnd.randrange(1000),
            "conditions": cond,
            "actions": rnd.choice(actions),
        }
        if rnd.random() < 0.2:
            rule["exceptions"] = {"sender_domain": ["example.com"]}
        if rnd.random() < 0.1:
            rule["mode"] = "audit"
        rules.append(rule)
    for name in sorted(BUILTIN_NAMES) if dlp else ():
        rules.append(
            {
                "name": f"dlp-{name}",
                "conditions": {"sensitive_info": [{"type": name, "min_count": 1, "min_confidence": "medium"}]},
                "actions": {"incident_report_to": ["dlp@example.com"]},
                "mode": "audit",
            }
        )
    return rules


def corpus_files(root: Path, sets: list[str] | None) -> list[Path]:
    files = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sets and sub.name not in sets:
            continue
        for path in sorted(sub.rglob("*")):
            if path.is_file() and path.name not in {"README.md", "MANIFEST.tsv"} and not path.name.startswith("."):
                files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sets", help="comma-separated corpus sub-directories (default: all)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many messages")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--no-dlp", action="store_true", help="leave out the DLP rules (rules alone)")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.limit, args.rules = QUICK_MESSAGES, QUICK_RULES

    started = time.process_time()
    policy = Policy.model_validate({"rules": generate_rules(args.rules, dlp=not args.no_dlp)})
    stage = TransportRules()
    stage.cache.get(policy.rules)
    compile_ms = (time.process_time() - started) * 1000
    files = corpus_files(args.corpus, args.sets.split(",") if args.sets else None)
    if args.limit:
        random.Random(1).shuffle(files)
        files = files[: args.limit]

    loop = asyncio.new_event_loop()
    cpu_ms: list[float] = []
    matched = 0
    for path in files:
        msg = Message(path.read_bytes())
        _ = msg.email, msg.subject, msg.from_address  # parsing is shared by every stage: not the rules' cost
        env = Envelope(msg.from_address or "sender@example.org", ("user42@example.com",), client_ip="203.0.113.9")
        ctx = ScanContext(msg, env, Direction.INBOUND, policy, ORG)
        t0 = time.process_time()
        loop.run_until_complete(stage.inspect(ctx))
        cpu_ms.append((time.process_time() - t0) * 1000)
        outcome = ctx.facts.rules
        matched += bool(outcome and outcome.matched)
    loop.close()
    total = sum(cpu_ms) / 1000
    ordered = sorted(cpu_ms)
    dlp_rules = len(policy.rules) - args.rules
    print(f"rules: {len(policy.rules)} ({args.rules} generated + {dlp_rules} DLP), compiled in {compile_ms:.0f} ms CPU")
    print(f"messages: {len(cpu_ms)}, with at least one rule matching: {matched}")
    print("CPU time of the rules stage per message (time.process_time, not wall-clock):")
    print(f"  messages/s of CPU: {len(cpu_ms) / total:.0f}")
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"  median {statistics.median(cpu_ms):.2f} ms, p95 {p95:.2f} ms, max {ordered[-1]:.1f} ms")


if __name__ == "__main__":
    main()

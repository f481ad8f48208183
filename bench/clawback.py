"""Clawback benchmark: a campaign of 1,000 recipients against each provider, through the product's service
and production connectors: the Microsoft Graph and Gmail fakes (HTTPS on loopback) and a real Dovecot
(IMAP, master user; needs root and Debian's dovecot-imapd).

    .venv-test/bin/python bench/clawback.py                 # 1,000 recipients (10 messages x 100), 3 runs
    .venv-test/bin/python bench/clawback.py --quick         # 40 recipients, 1 run: checks the script works
    .venv-test/bin/python bench/clawback.py --only graph --recipients 5000

Prints, per provider, the median over the runs of: recipients clawed back per second (wall clock from the
campaign's start to its last recipient), the time until the first recipient is reported removed, and CPU
ms per recipient of this process (which also runs the HTTP fakes; Dovecot's CPU is its own).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailwarden.ids import new_id  # noqa: E402
from mailwarden.logs import configure as configure_logging  # noqa: E402
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict  # noqa: E402
from mailwarden.model.accounts import Principal, Role  # noqa: E402
from mailwarden.model.clawback import ClawbackAction, ItemStatus, JobView  # noqa: E402
from mailwarden.model.policy import parse_organisation_document  # noqa: E402
from mailwarden.model.trace import MessageRecord, RecipientRecord  # noqa: E402
from mailwarden.service.clawback import Clawback  # noqa: E402
from mailwarden.service.config import Config  # noqa: E402
from mailwarden.service.runtime import Runtime  # noqa: E402
from mailwarden.store import HistoryQuery  # noqa: E402
from tests.integration.mailboxes import DOMAIN, PROVIDERS, Mailboxes  # noqa: E402

ANALYST = Principal("bench", Role.ANALYST, None, None)


@dataclass
class Run:
    recipients: int
    seconds: float
    first_removal: float
    cpu_ms_per_recipient: float

    @property
    def per_second(self) -> float:
        return self.recipients / self.seconds


def record(rt: Runtime, boxes: Mailboxes, sender: str, rcpts: list[str]) -> None:
    mid = f"<{secrets.token_hex(8)}@bad.example>"
    boxes.put(rcpts, mid)
    now = datetime.now(UTC)
    rt.history.record(
        MessageRecord(
            id=new_id(now), organisation="corp", received_at=now, direction=Direction.INBOUND, mode=Mode.MONITOR,
            source="journal", sender=sender, from_address=sender, subject="wave", internet_message_id=mid, size=100,
            sha256="ab" * 32, client_ip=None, applied=False,
            verdict=Verdict(direction=Direction.INBOUND, category=Category.PHISH, disposition=Disposition(Action.JUNK)),
            recipients=[RecipientRecord(r, field="to") for r in rcpts],
        )
    )  # fmt: skip


async def one_run(boxes: Mailboxes, directory: Path, messages: int) -> Run:
    rt = Runtime(Config.model_validate({"paths": {"data_dir": str(directory)}, "clawback": {"batch_size": 500}}))
    rt.db.migrate()
    rt.policies.import_document(
        parse_organisation_document({"name": "corp", "domains": [{"name": DOMAIN}]}), actor="bench"
    )
    service = Clawback(rt)
    service.put_connector(
        "corp", "bench", kind=boxes.kind, domains=[], settings=boxes.settings, secret=boxes.secret, actor="bench"
    )
    sender = f"wave-{secrets.token_hex(4)}@bad.example"
    per = len(boxes.addresses) // messages
    for i in range(messages):
        record(rt, boxes, sender, boxes.addresses[i * per : (i + 1) * per])
    first: list[float] = []
    cpu0, start = time.process_time(), time.monotonic()

    def progress(view: JobView) -> None:
        if not first and view.counts.get(ItemStatus.MOVED):
            first.append(time.monotonic() - start)

    job = service.campaign(
        HistoryQuery(sender=sender), ANALYST, action=ClawbackAction.TRASH, reason="bench", expect=messages
    )
    done = await service.until_done(job.id, progress)
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu0
    await service.aclose()
    rt.close()
    moved = done.counts.get(ItemStatus.MOVED, 0)
    if moved != done.total:
        raise SystemExit(f"{boxes.kind}: only {moved} of {done.total} moved: {dict(done.counts)}")
    return Run(done.total, seconds, first[0] if first else seconds, cpu * 1000 / done.total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10, help="the campaign's messages (recipients split evenly)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=sorted(PROVIDERS), action="append")
    parser.add_argument("--quick", action="store_true", help="40 recipients, 1 run")
    args = parser.parse_args()
    configure_logging("warning", "console")
    if args.quick:
        args.recipients, args.messages, args.runs = 40, 4, 1
    print(f"clawback campaign: {args.recipients} recipients in {args.messages} messages, {args.runs} runs (medians)")
    print(f"{'provider':<8} {'recipients/s':>13} {'first removal s':>16} {'CPU ms/recipient':>17}")
    with tempfile.TemporaryDirectory(prefix="mw-bench-clawback-") as tmp:
        for kind in args.only or sorted(PROVIDERS):
            with PROVIDERS[kind](Path(tmp) / kind, args.recipients) as boxes:
                runs = [asyncio.run(one_run(boxes, Path(tmp) / f"{kind}-{i}", args.messages)) for i in range(args.runs)]
            print(
                f"{kind:<8} {statistics.median(r.per_second for r in runs):>13.1f} "
                f"{statistics.median(r.first_removal for r in runs):>16.2f} "
                f"{statistics.median(r.cpu_ms_per_recipient for r in runs):>17.2f}"
            )


if __name__ == "__main__":
    main()

"""Where a scan's time goes: the whole default inbound pipeline under pyinstrument, over corpus messages.

    .venv-test/bin/pip install -e '.[test,bench]'
    .venv-test/bin/python bench/profile_scan.py [--corpus ../shared/corpus] [--sets phish spamassassin/ham] [--n 300]
                                                [--quick]

Runs offline like `mailwarden scan` (embedded SQLite in a temp dir, DNS answered SERVFAIL at once by the
loopback resolver bench/peers uses) and prints pyinstrument's call tree, then CPU ms per message per stage.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
QUICK_MESSAGES_PER_SET = 8
CONFIG = """\
[paths]
data_dir = "{data}"
[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 0.5
[log]
level = "error"
"""


def main() -> None:
    import sys

    from pyinstrument import Profiler

    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from mailwarden_adapter import local_dns_port  # the loopback resolver answering SERVFAIL at once

    from mailwarden.model import Direction, Message, Policy
    from mailwarden.service.config import load_config
    from mailwarden.service.runtime import Runtime, offline_envelope

    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sets", nargs="+", default=["phish", "modern-ham", "spamassassin/ham", "spamassassin/spam"])
    parser.add_argument("--n", type=int, default=200, help="messages per set")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.n = QUICK_MESSAGES_PER_SET
    paths = []
    for name in args.sets:
        files = sorted(p for p in (args.corpus / name).iterdir() if p.is_file() and p.suffix not in (".tsv", ".md"))
        paths += files[: args.n]
    raws = [p.read_bytes() for p in paths]
    with tempfile.TemporaryDirectory(prefix="mw-profile-") as tmp:
        config_path = Path(tmp) / "mailwarden.toml"
        config_path.write_text(CONFIG.format(data=Path(tmp) / "data", dns_port=local_dns_port()))
        rt = Runtime(load_config(config_path, environ={}))
        rt.db.migrate()  # the token statistics in the product database, as `mailwarden serve` has them
        pipeline = rt.pipeline
        policy = Policy()
        stage_ms: dict[str, list[float]] = {}
        cpu: list[float] = []

        async def run(sample: list[bytes]) -> None:
            for raw in sample:
                started = time.process_time()
                message = Message(raw)
                verdict = await pipeline.scan(message, offline_envelope(message), policy, direction=Direction.INBOUND)
                cpu.append((time.process_time() - started) * 1000)
                for stage in verdict.stages:
                    stage_ms.setdefault(stage.stage, []).append(stage.duration_ms)

        asyncio.run(run(raws[:5]))  # warm: lazy imports, model load, rule compilation
        cpu.clear()
        stage_ms.clear()
        profiler = Profiler(interval=0.0005)
        profiler.start()
        asyncio.run(run(raws))
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        cpu.sort()
        print(
            f"{len(raws)} messages; CPU per message (parse + every stage + decide): median "
            f"{statistics.median(cpu):.2f} ms, p95 {cpu[int(len(cpu) * 0.95)]:.2f} ms, "
            f"mean {statistics.mean(cpu):.2f} ms"
        )
        for name, values in stage_ms.items():
            print(
                f"  {name:11} wall ms per message: median {statistics.median(values):.2f}, "
                f"mean {statistics.mean(values):.2f}"
            )
        asyncio.run(pipeline.close())
        rt.close()


if __name__ == "__main__":
    main()

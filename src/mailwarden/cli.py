"""The one command line: init, scan, trace, policy, org, pipeline (serve and the rest join later)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mailwarden import __version__, ids
from mailwarden.api import command as accounts_command
from mailwarden.enforce.record import monitor_record
from mailwarden.errors import MailwardenError, PolicyError
from mailwarden.ingest.files import InputItem, expand_paths
from mailwarden.ingest.tls import write_self_signed
from mailwarden.logs import configure as configure_logging
from mailwarden.model import Action, Category, Direction, Envelope, Message, Verdict
from mailwarden.model.direction import assumed_direction
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventRecord, MessageRecord
from mailwarden.pipeline.rules import command as rules_command
from mailwarden.progress import reading
from mailwarden.quarantine import command as quarantine_command
from mailwarden.service.config import DEFAULT_CONFIG_PATH, Config, load_config
from mailwarden.service.runtime import Runtime, offline_envelope

# Help texts are plain text: with Rich markup on, a config section such as `[stages.spam]` in a help
# text is taken for a style tag and vanishes. The setting applies to every sub-command below.
app = typer.Typer(
    help="mailwarden: email security for journal monitoring and inline filtering.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
policy_app = typer.Typer(
    help="Export, import and check an organisation's policy document (YAML).", no_args_is_help=True
)
org_app = typer.Typer(help="Organisations and their monitor / enforce switch.", no_args_is_help=True)
pipeline_app = typer.Typer(help="The filter pipeline.", no_args_is_help=True)
malware_app = typer.Typer(help="The malware filter's rule pack.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(org_app, name="org")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(malware_app, name="malware")
app.add_typer(rules_command.app, name="rules")
app.add_typer(accounts_command.user_app, name="user")
app.add_typer(accounts_command.token_app, name="token")
app.add_typer(quarantine_command.app, name="quarantine")

# a pipe or file gets wide lines instead of rich's 80-column default
RECORD_BATCH = 200  # messages written per transaction by scan --record

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, however long

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="MAILWARDEN_CONFIG", help="Config file (default ./mailwarden.toml)."),
]
OrgOption = Annotated[str | None, typer.Option("--org", help="Organisation (default: the config's).")]


def main() -> None:
    try:
        app()
    except MailwardenError as exc:
        _error(str(exc))
        sys.exit(exc.exit_code)


def _error(text: str) -> None:
    """One error line on stderr; the text is shown as it is (a `[section]` in it is no style tag)."""
    err.print(f"[red]error:[/red] {escape(text)}")


@contextmanager
def runtime(config_path: Path | None) -> Iterator[Runtime]:
    config = load_config(config_path)
    configure_logging(config.log.level, config.log.format)
    rt = Runtime.started(config)
    try:
        yield rt
    finally:
        rt.close()


# ---- init -------------------------------------------------------------------------------------

CONFIG_TEMPLATE = """\
# mailwarden configuration. Every key can also be set in the environment as
# MAILWARDEN_<SECTION>__<KEY>, e.g. MAILWARDEN_STORE__URL; the environment wins over this file.

# Organisation used by commands that are not told one (--org).
organisation = "{organisation}"

[store]
# Empty: the embedded SQLite database in paths.data_dir. For scale-out use PostgreSQL:
# url = "postgresql+psycopg://mailwarden@db.example.net/mailwarden"
url = ""

[paths]
# Database (when embedded), spool and quarantine blobs live here; relative to this file.
data_dir = "var"

[pipeline]
# The filter order per direction; leave unset for the product's order (mailwarden pipeline show).
# inbound = ["connection", "malware", "rules", "spam"]
# outbound = ["malware", "rules", "outbound_spam"]
# A stage that runs longer than this counts as failed and the policy's fail-safe applies.
stage_timeout_seconds = 30

[smtp]
hostname = "{hostname}"
# Written by `mailwarden init` (self-signed); replace with your own certificate and key.
tls_cert = "var/tls/cert.pem"
tls_key = "var/tls/key.pem"
max_message_size = 52428800   # bytes, announced in EHLO SIZE
max_recipients = 500
max_connections_per_ip = 20
max_data_in_flight = 268435456   # bytes all sessions may hold in DATA; past it the largest gives way (452)
max_hops = 50   # Received fields at which inbound and outbound mail is refused as a loop (554 5.4.6)

# Monitor mode: your mail service journals a copy of every message here.
[[smtp.listeners]]
name = "journal"
role = "journal"
host = "127.0.0.1"   # use 0.0.0.0 or a public address to take reports from your provider
port = 10025
journal_addresses = ["journal@{hostname}"]
# Who may send journal reports (anyone else could forge message history): allowed_networks,
# auth_users (SMTP AUTH over TLS) and/or tls_client_ca (+ tls_client_subjects) for client certificates.
# Only this machine for now; add your provider's sending ranges when you open the listener.
allowed_networks = ["127.0.0.0/8", "::1/128"]
# Provider ranges as published when this file was written. They change: take the current lists from
#   Microsoft 365: "Microsoft 365 URLs and IP address ranges", Exchange Online, ID 10 (TCP 25), or
#                  https://endpoints.office.com/endpoints/worldwide?clientrequestid=<any GUID>
#   Google:        https://support.google.com/a/answer/60764, or `dig TXT _spf.google.com` and the
#                  _netblocks*.google.com records it includes
# Every tenant of a provider sends from its ranges: also keep the journal address secret
# (journal+<random>@...) or prefer tls_client_ca / auth_users where your service supports them.
# allowed_networks = [
#   "127.0.0.0/8", "::1/128",
#   # Microsoft 365 / Exchange Online
#   "40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17",
#   "2a01:111:f400::/48", "2a01:111:f403::/48",
#   # Google Workspace
#   "35.190.247.0/24", "64.233.160.0/19", "66.102.0.0/20", "66.249.80.0/20", "72.14.192.0/18",
#   "74.125.0.0/16", "108.177.8.0/21", "173.194.0.0/16", "209.85.128.0/17", "216.58.192.0/19",
#   "216.239.32.0/19",
#   "2001:4860:4000::/36", "2404:6800:4000::/36", "2607:f8b0:4000::/36", "2800:3f0:4000::/36",
#   "2a00:1450:4000::/36", "2c0f:fb50:4000::/36",
# ]
# tls_client_ca = "/etc/ssl/certs/ca-certificates.crt"   # verify client certificates against these CAs
# tls_client_subjects = ["mail.protection.outlook.com"]   # and only these names (Exchange Online's)
# auth_users = {{ "journal-sender" = "scrypt$15$8$1$...$..." }}   # mailwarden hash-password

# Enforce mode: point MX records (or a connector) here; mail for unknown domains is refused.
# [[smtp.listeners]]
# name = "inbound"
# role = "inbound"
# host = "0.0.0.0"
# port = 25

# Enforce mode, outbound: your mail server relays outgoing mail through here.
# [[smtp.listeners]]
# name = "outbound"
# role = "outbound"
# port = 587
# allowed_networks = ["192.0.2.0/24"]

[delivery]
# Outbound mail to the internet: "" looks up MX records; or name a smart host "host:port".
pools = {{ default = "" }}
max_queue_lifetime = 172800   # seconds a message may wait for delivery before it bounces

[log]
level = "info"      # debug, info, warning, error
format = "console"  # console or json
"""


@app.command()
def init(
    config: ConfigOption = None,
    organisation: Annotated[str, typer.Option("--organisation", help="Name of the first organisation.")] = "default",
    domain: Annotated[list[str] | None, typer.Option("--domain", help="An accepted domain (repeatable).")] = None,
) -> None:
    """Write a commented config file (unless one exists), create the data directories and the database."""
    path = config or DEFAULT_CONFIG_PATH
    if not path.exists():
        hostname = socket.getfqdn() if "." in socket.getfqdn() else "mailwarden.localdomain"
        path.write_text(CONFIG_TEMPLATE.format(organisation=organisation, hostname=hostname), encoding="utf-8")
        out.print(f"wrote {path}")
    else:
        out.print(f"kept existing {path}")
    with runtime(path) as rt:
        paths = rt.config.paths
        for directory in (paths.data_dir, paths.spool_dir, paths.queue_dir, paths.blob_dir):
            directory.mkdir(parents=True, exist_ok=True)
        smtp = rt.config.smtp
        if smtp.tls_cert and smtp.tls_key and not smtp.tls_cert.exists():
            smtp.tls_cert.parent.mkdir(parents=True, exist_ok=True)
            write_self_signed(smtp.tls_cert, smtp.tls_key, smtp.hostname or socket.getfqdn())
            out.print(f"wrote a self-signed TLS certificate to {smtp.tls_cert}")
        rt.db.migrate()
        out.print(f"database ready at revision {rt.db.current_revision()} ({_safe_url(rt.config.database_url)})")
        names = {o.name for o in rt.policies.list_organisations()}
        if rt.config.organisation not in names or domain:
            doc = _document_for(rt, rt.config.organisation, domain or [])
            rt.policies.import_document(doc, actor="init")
            out.print(
                f"organisation {rt.config.organisation!r} with domains: {', '.join(domain or []) or '(none yet)'}"
            )


def _document_for(rt: Runtime, name: str, domains: list[str]) -> Any:
    existing = {o.name for o in rt.policies.list_organisations()}
    data: dict[str, Any] = (
        rt.policies.export_document(name).model_dump(mode="json") if name in existing else {"name": name}
    )
    known = {d["name"] for d in data.get("domains", [])}
    data["domains"] = [*data.get("domains", []), *({"name": d} for d in domains if d.lower() not in known)]
    return parse_organisation_document(data)


def _safe_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


# ---- serve ------------------------------------------------------------------------------------


@app.command()
def serve(
    config: ConfigOption = None,
    drain_timeout: Annotated[float, typer.Option(help="Seconds to finish open work on SIGTERM.")] = 30.0,
) -> None:
    """Run the SMTP listeners, the scanner behind the spool and the delivery queue until SIGTERM."""
    from mailwarden.service.server import Server

    with runtime(config) as rt:
        if not rt.config.smtp.listeners:
            raise MailwardenError("no [[smtp.listeners]] in the config: nothing to serve (see `mailwarden init`)")
        asyncio.run(Server(rt, drain_timeout=drain_timeout).run())


# ---- scan -------------------------------------------------------------------------------------


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, directories of them, or mbox files.")],
    config: ConfigOption = None,
    org: OrgOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message.")] = False,
    record: Annotated[bool, typer.Option("--record", help="Write each result to message history.")] = False,
) -> None:
    """Run the pipeline over messages offline and show the verdicts (nothing is delivered or changed)."""
    with runtime(config) as rt:
        if record:
            rt.db.migrate()
        organisation, policy = rt.organisation_and_policy(org)
        files = expand_paths(paths)
        missing = [p for p in paths if not p.exists()]
        for p in missing:
            _error(f"{p}: no such file or directory")
        rows: list[tuple[str, Message, Verdict]] = []
        pending: list[tuple[MessageRecord, list[EventRecord]]] = []
        failures = len(missing)

        async def run() -> None:
            nonlocal failures
            # a bar on stderr for long runs; JSON output stays clean for pipes
            with reading(files, "scanning", err, quiet=as_json) as items:
                for item in items:
                    message = _as_mail(item)
                    if message is None:
                        failures += 1
                        continue
                    envelope = offline_envelope(message)
                    domains = organisation.domain_names if organisation else frozenset()
                    direction = assumed_direction(envelope.mail_from, envelope.rcpt_to, domains)
                    try:
                        verdict = await rt.pipeline.scan(
                            message, envelope, policy, organisation=organisation, direction=direction
                        )
                    except Exception as exc:  # the engine guards stages; this guards the engine itself
                        failures += 1
                        _error(f"{item.source}: scan failed: {type(exc).__name__}: {exc}")
                        continue
                    if record:
                        pending.append(_record(message, envelope, verdict, organisation.name if organisation else None))
                        if len(pending) >= RECORD_BATCH:
                            rt.history.record_many(pending)
                            pending.clear()
                    if as_json:
                        out.print_json(json.dumps(_json_row(item.source, message, verdict)), indent=None)
                    else:
                        rows.append((item.source, message, verdict))
                rt.history.record_many(pending)

        asyncio.run(run())
        if not as_json:
            _print_scan_table(rows)
        if failures:
            raise typer.Exit(1)


def _record(
    message: Message, envelope: Envelope, verdict: Verdict, organisation: str | None
) -> tuple[MessageRecord, list[EventRecord]]:
    return monitor_record(
        message_id=ids.new_id(envelope.received_at),
        message=message,
        envelope=envelope,
        verdict=verdict,
        organisation=organisation,
        source="scan",
        receive_detail="offline scan",
    )


def _json_row(source: str, message: Message, verdict: Verdict) -> dict[str, Any]:
    return {
        "file": source,
        "message_id": message.message_id,
        "from": message.from_address,
        "subject": message.subject,
        **verdict.as_dict(),
    }


def _print_scan_table(rows: list[tuple[str, Message, Verdict]]) -> None:
    """Fixed-width lines: readable in a terminal, greppable in a file, and fast for thousands of rows."""
    if rows:
        header = f"{'file':32} {'verdict':22} {'SCL':>3} {'BCL':>3} {'action (would be)':19} {'from':32} subject"
        out.print(f"[bold]{header}[/bold]")
    for source, message, verdict in rows:
        name = Path(source).name
        name = name if len(name) <= 32 else name[:31] + "…"
        sender = escape((message.from_address or "")[:32])
        category = verdict.category.value
        pad = " " * (22 - len(category))
        out.print(
            f"{name:32} {_styled(verdict.category)}{pad} {verdict.scl:>3} {verdict.bcl:>3} "
            f"{verdict.disposition.action.value:19} {sender:32} {escape(message.subject[:70])}",
            markup=True,
        )
    counts = Counter(v.category.value for _, _, v in rows)
    summary = ", ".join(f"{k}: {n}" for k, n in counts.most_common()) or "nothing scanned"
    out.print(f"{len(rows)} messages scanned — {summary}")


def _styled(category: Category) -> str:
    colour = {
        Category.CLEAN: "green",
        Category.INTERNAL: "green",
        Category.BULK: "yellow",
        Category.SPAM: "yellow",
        Category.SCAN_ERROR: "magenta",
    }.get(category, "red")
    return f"[{colour}]{category.value}[/{colour}]"


# ---- trace ------------------------------------------------------------------------------------


def _when(value: str | None) -> datetime | None:
    """`2h`, `3d`, `30m` ago, or an ISO date/time (UTC when no zone is given)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an age like 24h / 7d nor an ISO date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def trace(
    config: ConfigOption = None,
    message: Annotated[str | None, typer.Option("--id", help="Show one message's detail and timeline.")] = None,
    since: Annotated[str | None, typer.Option(help="Start: an age (24h, 7d) or an ISO date.")] = None,
    until: Annotated[str | None, typer.Option(help="End: an age or an ISO date.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender address, or @domain.")] = None,
    recipient: Annotated[str | None, typer.Option(help="Recipient address, or @domain.")] = None,
    subject: Annotated[str | None, typer.Option(help="Words that must all appear in the subject.")] = None,
    message_id: Annotated[str | None, typer.Option("--message-id", help="Internet Message-ID.")] = None,
    direction: Annotated[Direction | None, typer.Option(help="inbound, outbound or internal.")] = None,
    verdict: Annotated[Category | None, typer.Option(help="Verdict category.")] = None,
    action: Annotated[Action | None, typer.Option(help="Action taken (or that would have been).")] = None,
    org: OrgOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Next page: the cursor printed under the last page.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search message history (newest first), or show one message's timeline with --id."""
    from mailwarden.store import HistoryQuery

    with runtime(config) as rt:
        if not rt.is_initialised():
            raise MailwardenError("the database is not initialised: run `mailwarden init` first")
        if message:
            _print_detail(rt, message, as_json)
            return
        query = HistoryQuery(
            start=_when(since),
            end=_when(until),
            sender=sender,
            recipient=recipient,
            subject=subject,
            internet_message_id=message_id,
            direction=direction,
            category=verdict,
            action=action,
            organisation=org,
            limit=limit,
            cursor=cursor,
        )
        page = rt.history.search(query)
        if as_json:
            for item in page.items:
                out.print_json(json.dumps(_jsonable(item.__dict__)), indent=None)
            return
        table = Table(header_style="bold")
        for column in ("id", "received (UTC)", "direction", "from", "to", "subject", "verdict", "SCL", "action"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for item in page.items:
            table.add_row(
                item.id,
                item.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                item.direction.value,
                item.sender,
                ", ".join(item.recipients[:2]) + (" …" if len(item.recipients) > 2 else ""),
                item.subject[:50],
                _styled(item.category),
                str(item.scl),
                item.action.value + ("" if item.applied else " (would)"),
            )
        out.print(table)
        out.print(
            f"{len(page.items)} message{'' if len(page.items) == 1 else 's'}"
            + (f" — next page: --cursor {page.next_cursor}" if page.next_cursor else "")
        )


def _print_detail(rt: Runtime, message_id: str, as_json: bool) -> None:
    detail = rt.history.get(message_id)
    if as_json:
        data = {
            "summary": detail.summary.__dict__,
            "verdict": detail.verdict,
            "recipients": [r.__dict__ for r in detail.recipients],
            "events": [e.__dict__ for e in detail.events],
        }
        out.print_json(json.dumps(_jsonable(data)))
        return
    s = detail.summary
    out.print(f"[bold]{s.subject or '(no subject)'}[/bold]")
    out.print(f"id {s.id}  Message-ID {s.internet_message_id or '-'}")
    out.print(f"from {s.sender or '<>'} ({s.from_address or '-'})  {s.direction.value}, {s.mode.value} mode")
    out.print(
        f"verdict {_styled(s.category)}  SCL {s.scl}  BCL {s.bcl}  action {s.action.value}"
        + ("" if s.applied else " (would have; not applied)")
    )
    table = Table(title="recipients", header_style="bold")
    table.add_column("address")
    table.add_column("field")
    table.add_column("status")
    for r in detail.recipients:
        table.add_row(r.address, r.field, r.status.value)
    out.print(table)
    timeline = Table(title="timeline", header_style="bold")
    for column in ("time (UTC)", "event", "recipient", "detail"):
        timeline.add_column(column)
    for e in detail.events:
        at = e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if e.at else ""
        text = e.detail + (f" [{e.smtp_reply}]" if e.smtp_reply else "")
        timeline.add_row(at, e.type.value, e.recipient or "", text)
    out.print(timeline)
    findings = [f for st in detail.verdict.get("stages", []) for f in st.get("findings", [])]
    if findings:
        out.print("findings: " + ", ".join(f"{f['code']}({f['score']:g})" for f in findings))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, int | float | str):
        return value.value
    return value


# ---- policy -----------------------------------------------------------------------------------


@policy_app.command("export")
def policy_export(
    config: ConfigOption = None,
    org: OrgOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the organisation, its domains and its policy as one YAML document."""
    with runtime(config) as rt:
        doc = rt.policies.export_document(org or rt.config.organisation)
        text = yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        if output:
            output.write_text(text, encoding="utf-8")
            err.print(f"wrote {output}")
        else:
            sys.stdout.write(text)


def _load_document(path: Path) -> Any:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_organisation_document(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: " + "; ".join(exc.errors), errors=exc.errors) from None


@policy_app.command("import")
def policy_import(path: Path, config: ConfigOption = None) -> None:
    """Apply a YAML document whole: the organisation, its domains and policy change together or not at all."""
    doc = _load_document(path)
    with runtime(config) as rt:
        rt.db.migrate()
        org = rt.policies.import_document(doc, actor="cli")
        out.print(f"imported organisation {org.name!r} ({len(org.domains)} domains)")
        for domain in org.domains:
            ldap = domain.recipient_verification.ldap
            if ldap is not None and ldap.bind_password_secret and ldap.bind_password_secret not in rt.config.secrets:
                # the server answers 451 for the domain until the secret is there: say so now, not in its log
                warning = f"warning: domain {domain.name}: secret {ldap.bind_password_secret!r} is not in [secrets]"
                err.print(warning, markup=False)


@policy_app.command("check")
def policy_check(path: Path) -> None:
    """Validate a YAML document without applying it."""
    doc = _load_document(path)
    out.print(f"{path}: valid (organisation {doc.name!r}, {len(doc.domains)} domains)")


# ---- org --------------------------------------------------------------------------------------


@org_app.command("list")
def org_list(config: ConfigOption = None) -> None:
    """Organisations, their domains and modes."""
    with runtime(config) as rt:
        table = Table(header_style="bold")
        for column in ("organisation", "monitor only", "domain", "connection", "next hop"):
            table.add_column(column)
        for o in rt.policies.list_organisations():
            if not o.domains:
                table.add_row(o.name, "yes" if o.monitor_only else "no", "", "", "")
            for i, d in enumerate(o.domains):
                table.add_row(
                    o.name if i == 0 else "",
                    ("yes" if o.monitor_only else "no") if i == 0 else "",
                    d.name,
                    d.mode.value,
                    d.next_hop or "",
                )
        out.print(table)


@org_app.command("mode")
def org_mode(
    mode: Annotated[str, typer.Argument(help="monitor or enforce")],
    config: ConfigOption = None,
    org: OrgOption = None,
) -> None:
    """Switch an organisation between monitor and enforce mode."""
    if mode not in ("monitor", "enforce"):
        raise typer.BadParameter("mode must be 'monitor' or 'enforce'")
    with runtime(config) as rt:
        name = org or rt.config.organisation
        rt.policies.set_monitor_only(name, mode == "monitor", actor="cli")
        out.print(f"organisation {name!r} is now in {mode} mode")


# ---- pipeline / version ----------------------------------------------------------------------


@pipeline_app.command("show")
def pipeline_show(config: ConfigOption = None) -> None:
    """Print the effective stage order per direction."""
    with runtime(config) as rt:
        for direction, names in rt.pipeline.order().items():
            out.print(f"{direction.value:9} {' → '.join(names) if names else '(no stage installed yet)'}")
        out.print(f"{Direction.INTERNAL.value:9} not scanned")


@malware_app.command("update-rules")
def malware_update_rules(
    source: Annotated[Path, typer.Argument(help="A directory of .yar files (with a VERSION file) or one .yar file.")],
    config: ConfigOption = None,
) -> None:
    """Install a YARA rule pack: compiled and checked first, then switched in whole (or not at all)."""
    from mailwarden.pipeline.malware.rules import update_rules

    with runtime(config) as rt:
        info = update_rules(source, rt.config.paths.data_dir)
        out.print(f"rule pack {info.version} installed: {info.rule_count} rules from {len(info.files)} files")


@app.command()
def learn(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, directories of them, or mbox files.")],
    spam: Annotated[bool, typer.Option("--spam", help="Learn these messages as spam.")] = False,
    ham: Annotated[bool, typer.Option("--ham", help="Learn these messages as ham (not spam).")] = False,
    forget: Annotated[bool, typer.Option("--forget", help="Take back messages learnt earlier.")] = False,
    config: ConfigOption = None,
) -> None:
    """Teach the spam classifier: learn messages as spam or ham (a message learnt with the other label
    before is moved), or forget them. The statistics live where `[stages.spam] statistics` says."""
    from mailwarden.pipeline.spam.learning import forget_message, learn_message
    from mailwarden.pipeline.spam.stage import open_configured_classifier

    if [spam, ham, forget].count(True) != 1:
        _error("give exactly one of --spam, --ham or --forget")
        raise typer.Exit(2)
    with runtime(config) as rt:
        rt.db.migrate()  # learning writes: the token_stats table must exist, as history must for scan --record
        classifier = open_configured_classifier(rt.stage_services)
        counts: dict[str, int] = {}
        failures = 0
        with reading(expand_paths(paths), "learning", err) as items:
            for item in items:
                message = _as_mail(item)
                if message is None:
                    failures += 1
                    continue
                if forget:
                    outcome = "forgotten" if forget_message(classifier, message) else "never learnt"
                else:
                    outcome = learn_message(classifier, message, spam).value
                counts[outcome] = counts.get(outcome, 0) + 1
        label = "spam" if spam else "ham" if ham else "forget"
        summary = ", ".join(f"{n} {what}" for what, n in counts.items()) or "nothing"
        nspam, nham = classifier.store.totals()
        out.print(f"{label}: {summary}; the model now holds {nspam} spam and {nham} ham messages")
        if failures:
            raise typer.Exit(1)


@app.command("hash-password")
def hash_password_command() -> None:
    """Print a password hash for `auth_users` of a listener (the password is asked, not echoed)."""
    from mailwarden.ingest.access import hash_password

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    out.print(hash_password(password))


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


__all__ = ["Config", "app", "main"]


def _as_mail(item: InputItem) -> Message | None:
    """The input as a message, or None after saying on stderr why it is not one."""
    if item.raw is None:
        _error(f"{item.source}: {item.error}")
        return None
    message = Message(item.raw)
    if not message.looks_like_mail():
        _error(f"{item.source}: not an email message (no mail header block)")
        return None
    return message

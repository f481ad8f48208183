"""`mailwarden init`: the commented config file, the data directories, the database, the first organisation."""

from __future__ import annotations

import re
import socket
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mailwarden.cli.common import ConfigOption, out, runtime
from mailwarden.errors import ConfigError
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from mailwarden.service.config import DEFAULT_CONFIG_PATH
from mailwarden.service.config_check import DEFAULT_PUBLIC_URL
from mailwarden.service.runtime import Runtime

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
{journal_listen}
journal_addresses = ["journal@{hostname}"]
# Who may send journal reports (anyone else could forge message history): allowed_networks,
# auth_users (SMTP AUTH over TLS) and/or tls_client_ca (+ tls_client_subjects) for client certificates.
{journal_access}
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

[console]
# The address users reach the console at (behind your TLS proxy): links in quarantine digests and
# notifications point here.
public_url = "{public_url}"
{auth_section}"""

# The providers' sending ranges as published when this was written (SOURCES says where to check them)
M365_NETWORKS = ("40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48",
                 "2a01:111:f403::/48")  # fmt: skip
GOOGLE_NETWORKS = ("35.190.247.0/24", "64.233.160.0/19", "66.102.0.0/20", "66.249.80.0/20", "72.14.192.0/18",
                   "74.125.0.0/16", "108.177.8.0/21", "173.194.0.0/16", "209.85.128.0/17", "216.58.192.0/19",
                   "216.239.32.0/19", "2001:4860:4000::/36", "2404:6800:4000::/36", "2607:f8b0:4000::/36",
                   "2800:3f0:4000::/36", "2a00:1450:4000::/36", "2c0f:fb50:4000::/36")  # fmt: skip
LOCAL_NETWORKS = ("127.0.0.0/8", "::1/128")


class Provider(StrEnum):
    M365 = "m365"
    GOOGLE = "google"
    POSTFIX = "postfix"


def _networks(networks: tuple[str, ...]) -> str:
    lines = [f'  "{n}",' for n in (*LOCAL_NETWORKS, *networks)]
    return "allowed_networks = [\n" + "\n".join(lines) + "\n]"


def journal_listen(provider: Provider | None) -> str:
    if provider in (Provider.M365, Provider.GOOGLE):
        return (
            'host = "0.0.0.0"   # the provider delivers to the MX of the journal address\'s domain, port 25\n'
            "port = 25          # needs CAP_NET_BIND_SERVICE (contrib/mailwarden.service grants it)"
        )
    return 'host = "127.0.0.1"   # use 0.0.0.0 or a public address to take reports from your provider\nport = 10025'


SOURCES = """\
# Provider ranges as published when this file was written. They change: take the current lists from
#   Microsoft 365: "Microsoft 365 URLs and IP address ranges", Exchange Online, ID 10 (TCP 25), or
#                  https://endpoints.office.com/endpoints/worldwide?clientrequestid=<any GUID>
#   Google:        https://support.google.com/a/answer/60764, or `dig TXT _spf.google.com` and the
#                  _netblocks*.google.com records it includes
# Every tenant of a provider sends from its ranges: also keep the journal address secret
# (journal+<random>@...) or prefer tls_client_ca / auth_users where your service supports them."""


def journal_access(provider: Provider | None) -> str:
    if provider is Provider.M365:
        return f"{SOURCES}\n# Microsoft 365 / Exchange Online:\n{_networks(M365_NETWORKS)}"
    if provider is Provider.GOOGLE:
        return f"{SOURCES}\n# Google Workspace:\n{_networks(GOOGLE_NETWORKS)}"
    if provider is Provider.POSTFIX:
        return "# This machine; add your Postfix's address (the host that always_bcc's here).\n" + _networks(())
    example = "\n".join("# " + line for line in _networks((*M365_NETWORKS, *GOOGLE_NETWORKS)).splitlines())
    return (
        f"# Only this machine for now; add your provider's sending ranges when you open the listener.\n"
        f"{_networks(())}\n{SOURCES}\n{example}"
    )


def auth_section(provider: Provider | None, authserv_id: str) -> str:
    """`[stages.auth]` trust settings: whose Authentication-Results on a journal copy stand (docs/authentication.md)."""
    if provider is Provider.M365:
        return (
            "\n[stages.auth]\n"
            "# Exchange Online writes Authentication-Results without an authserv-id: trust the topmost one.\n"
            "trust_first_authentication_results = true\n"
        )
    if provider is Provider.GOOGLE:
        return (
            "\n[stages.auth]\n# Gmail's own checks of the original message.\n"
            'trusted_authserv_ids = ["mx.google.com"]\n'
        )
    if provider is Provider.POSTFIX:
        return (
            "\n[stages.auth]\n# The authserv-id your Postfix's milters (OpenDKIM, OpenDMARC) write.\n"
            f'trusted_authserv_ids = ["{authserv_id}"]\n'
        )
    return ""


NEXT_STEPS = {
    Provider.M365: (
        "In the Microsoft Purview portal, Data lifecycle management > Exchange (legacy) > Journal rules: set "
        "'Send undeliverable journal reports to' first, then add a rule for All messages (Global) sending reports "
        "to {journal}; the MX of its domain must point at this host. Exchange Online delivers the reports from its "
        "published ranges (written into allowed_networks)."
    ),
    Provider.GOOGLE: (
        "In the Google Admin console, Apps > Google Workspace > Gmail > Routing: add a rule for inbound, outbound "
        "and internal messages with 'Also deliver to' {journal} (and 'Add X-Gm-Original-To header' on); the MX of "
        "its domain must point at this host."
    ),
    Provider.POSTFIX: (
        "On your Postfix: always_bcc = {journal} (or recipient_bcc_maps / sender_bcc_maps), and let this machine's "
        "address in: add it to allowed_networks in {config}."
    ),
}


def init(
    config: ConfigOption = None,
    organisation: Annotated[str, typer.Option("--organisation", help="Name of the first organisation.")] = "default",
    domain: Annotated[list[str] | None, typer.Option("--domain", help="An accepted domain (repeatable).")] = None,
    provider: Annotated[
        Provider | None, typer.Option("--provider", help="Your mail service: its journal trust settings are written.")
    ] = None,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="The console's address as users reach it (digest links).")
    ] = None,
    authserv_id: Annotated[
        str | None, typer.Option("--authserv-id", help="postfix: the authserv-id your milters write (default: FQDN).")
    ] = None,
) -> None:
    """Write a commented config file (unless one exists), create the data directories and the database, and
    print the next steps."""
    path = config or DEFAULT_CONFIG_PATH
    hostname = socket.getfqdn() if "." in socket.getfqdn() else "mailwarden.localdomain"
    if public_url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", public_url):
        raise ConfigError(f"{public_url!r} is not an http(s) URL", field="--public-url")
    if not path.exists():
        text = CONFIG_TEMPLATE.format(
            organisation=organisation,
            hostname=hostname,
            journal_access=journal_access(provider),
            journal_listen=journal_listen(provider),
            public_url=public_url or DEFAULT_PUBLIC_URL,
            auth_section=auth_section(provider, authserv_id or hostname),
        )
        path.write_text(text, encoding="utf-8")
        out.print(f"wrote {path}" + (f" for {provider.value}" if provider else ""))
    else:
        out.print(f"kept existing {path}")
    with runtime(path) as rt:
        paths = rt.config.paths
        for directory in (paths.data_dir, paths.spool_dir, paths.queue_dir, paths.blob_dir):
            directory.mkdir(parents=True, exist_ok=True)
        smtp = rt.config.smtp
        if smtp.tls_cert and smtp.tls_key and not smtp.tls_cert.exists():
            smtp.tls_cert.parent.mkdir(parents=True, exist_ok=True)
            from mailwarden.ingest.tls import write_self_signed  # cryptography: only here, not at every command's start

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
        _next_steps(rt, path, provider)


def _next_steps(rt: Runtime, path: Path, provider: Provider | None) -> None:
    journals = [a for listener in rt.config.smtp.listeners for a in listener.journal_addresses]
    journal = journals[0] if journals else "(add a journal listener)"
    steps = []
    if provider is not None:
        steps.append(NEXT_STEPS[provider].format(journal=journal, config=path))
    else:
        steps.append(f"Have your mail service journal (or BCC) a copy of every message to {journal}: `--provider` "
                     "m365, google or postfix writes the trust settings for it.")  # fmt: skip
    if not Accounts(rt.db).list_users():
        steps.append("Add the first administrator: mailwarden user add admin --role admin --email you@example.com")
    url = rt.config.console.public_url
    if url == DEFAULT_PUBLIC_URL:
        steps.append(f"Set [console] public_url in {path} to the address users reach the console at (now {url}).")
    steps.append("Check the configuration: mailwarden config check; then start: mailwarden serve")
    steps.append(f"The console: {url}")
    out.print("next steps:")
    for i, step in enumerate(steps, 1):
        out.print(f"  {i}. {step}", markup=False)


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

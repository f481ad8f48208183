"""`mailwarden policy export|import|check`: an organisation's policy document as YAML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from mailwarden.cli.common import ConfigOption, OrgOption, err, out, runtime
from mailwarden.errors import PolicyError
from mailwarden.model.policy import parse_organisation_document

policy_app = typer.Typer(
    help="Export, import and check an organisation's policy document (YAML).", no_args_is_help=True
)


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
    with runtime(config, migrate=True) as rt:
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

"""`tts-runner providers`: the accounts of the providers file (the account registry).

Shows each account's kind, plan, effective limits, base URLs, and which environment variables
its credentials are read from, with whether each is set. It never reads a credential's value
beyond asking whether it is empty, so no value can reach the output. Nothing is sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.manifest import Account
from runner.manifest.registry import ENV_VAR, load_registry, registry_location
from runner.plans import PRESETS, Limits, PlanPreset

__all__ = ["account_document", "add_commands"]


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "providers",
        help="the accounts of the providers file: plans and effective limits (never secrets)",
        description="List the accounts of the providers file (--providers FILE, else "
        f"${ENV_VAR}, else ~/.config/tts-runner/providers.yaml): kind, plan, effective "
        "limits, base URLs, and which environment variables hold their credentials and whether "
        "each is set (never the values). Exit 0, or 2 when the file is invalid or a file named "
        "by --providers or the variable does not exist.",
    )
    parser.add_argument(
        "--providers",
        type=Path,
        metavar="FILE",
        help=f"the providers file (default: ${ENV_VAR}, else ~/.config/tts-runner/providers.yaml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_providers)


def cmd_providers(args: argparse.Namespace) -> int:
    where = registry_location(args.providers)
    accounts = load_registry(where.path, required=where.required, named_by=where.describe())
    env: Mapping[str, str] = os.environ
    exists = where.path.is_file()
    documents = [account_document(a, env) for _, a in sorted(accounts.items())]
    if args.json:
        document = {
            "file": str(where.path),
            "origin": where.origin,
            "exists": exists,
            "accounts": documents,
        }
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    if not exists:
        print(
            f"no providers file at {where.path} ({where.describe()}); manifests use only the "
            f"accounts they define. Create it, or name another with --providers FILE or "
            f"${ENV_VAR}."
        )
        return 0
    count = len(documents)
    print(f"{where.path} ({where.describe()}): {count} account{'s' if count != 1 else ''}")
    for entry in documents:
        print()
        print(*_lines(entry), sep="\n")
    return 0


def account_document(account: Account, env: Mapping[str, str]) -> dict[str, object]:
    preset = PRESETS.get((account.kind, account.plan))
    return {
        "name": account.name,
        "kind": account.kind,
        "plan": account.plan,
        "defined_in": account.defined_in,
        "limits": _limits(account.limits),
        "limits_source": _source(account.limits, preset),
        "base_urls": list(account.base_urls),
        "credentials": [
            {"role": role, "env": var, "set": bool(env.get(var))}
            for role, var in sorted(account.credentials.items())
        ],
        "options": dict(account.options),
    }


def _source(limits: Limits, preset: PlanPreset | None) -> str:
    """Where the effective limits come from: `limits:` in the file, or the plan's preset (whose
    numbers the vendor publishes, or which are a safe assumption where the vendor is silent)."""
    if preset is None or limits != preset.limits:
        return "overridden"
    return "published" if preset.published else "assumed"


def _limits(limits: Limits) -> dict[str, object]:
    return {
        "requests": limits.requests,
        "per_seconds": limits.per_seconds,
        "concurrent": limits.concurrent,
        "max_chars": limits.max_chars,
    }


def _lines(entry: Mapping[str, Any]) -> list[str]:
    limits = entry["limits"]
    if limits["requests"] is None:
        rate = "no request rate limit"
    else:
        rate = f"{limits['requests']:,} requests per {limits['per_seconds']:g} s"
    at_once = "any number" if limits["concurrent"] is None else f"{limits['concurrent']:,}"
    chars = "unlimited" if limits["max_chars"] is None else f"{limits['max_chars']:,}"
    source = {
        "overridden": "the plan's, adjusted for this account",
        "published": "the plan's published limits",
        "assumed": "the plan's assumed limits; the vendor publishes none",
    }[entry["limits_source"]]
    credentials = [
        f"{c['env']} ({c['role']}, {'set' if c['set'] else 'NOT SET'})"
        for c in entry["credentials"]
    ]
    options = ", ".join(f"{k}: {v}" for k, v in sorted(entry["options"].items()))
    lines = [
        f"{entry['name']}  {entry['kind']}, plan {entry['plan']}  ({entry['defined_in']})",
        f"  limits:       {rate}, {at_once} at once, {chars} characters per request ({source})",
        f"  base URL:     {', '.join(entry['base_urls']) or 'the provider default'}",
        f"  credentials:  {', '.join(credentials) or 'none needed'}",
    ]
    if options:
        lines.append(f"  options:      {options}")
    return lines

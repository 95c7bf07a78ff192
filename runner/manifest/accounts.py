"""The `providers:` section — named provider accounts — shared by manifests and providers files.

Credentials never appear in these files, only the names of environment variables that hold them.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Final

from runner.manifest.check import Checker, did_you_mean
from runner.manifest.model import Account
from runner.manifest.params import ParamValue
from runner.manifest.yamlpos import Node
from runner.plans import DEFAULT_PLAN, KINDS, Limits, effective_limits, plans_for

__all__ = ["CREDENTIALS", "IMPLICIT_LOCAL", "account_kinds", "check_accounts"]

#: Per kind: the key naming each credential's environment variable, and its default name.
CREDENTIALS: Final[dict[str, dict[str, str]]] = {
    "local": {},
    "indextts": {"sign_env": "INDEX_API_SIGN"},
    "voxcpm": {},
    "fish_yuntts": {"token_env": "YUNTTS_TOKEN"},
    "fishaudio_net": {"token_env": "FISHAUDIO_NET_TOKEN"},
    "ttsai": {"api_key_env": "TTSAI_API_KEY"},
}

#: Per kind: account options beyond the common ones.
_OPTIONS: Final[dict[str, tuple[str, ...]]] = {
    "fish_yuntts": ("msgpack",),
    "fishaudio_net": ("msgpack",),
}

_COMMON = ("kind", "plan", "limits", "timeout")
_SECRET_WORDS = ("key", "token", "sign", "secret", "password", "authorization")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")

IMPLICIT_LOCAL: Final = Account(
    name="local",
    kind="local",
    plan="default",
    limits=effective_limits("local", "default", Limits()),
)


def check_accounts(c: Checker, node: Node) -> dict[str, Account]:
    """Check a `providers:` mapping; returns the accounts that passed."""
    items = c.mapping(node, "providers")
    if items is None:
        return {}
    accounts: dict[str, Account] = {}
    for name, body in items.items():
        at = c.key_at(node, name)
        if not _NAME.match(name):
            c.add(
                at, f"account name `{name}` must start with a letter and use only A-Z a-z 0-9 _ -"
            )
            continue
        account = _check_account(c, name, body, at)
        if account is not None:
            accounts[name] = account
    return accounts


def account_kinds(node: Node) -> dict[str, str | None]:
    """Each account name of a `providers:` mapping, with its kind when that is a known kind."""
    kinds: dict[str, str | None] = {}
    for name, body in node.value.items() if isinstance(node.value, dict) else ():
        kind = body.value.get("kind") if isinstance(body.value, dict) else None
        kinds[name] = kind.value if kind is not None and kind.value in KINDS else None
    return kinds


def _check_account(c: Checker, name: str, node: Node, at: tuple[int, int]) -> Account | None:
    what = f"providers.{name}"
    items = c.mapping(node, what)
    if items is None:
        return None
    if "kind" not in items:
        c.add(node, f"`{what}` needs `kind`: one of {', '.join(KINDS)}")
        return None
    kind = c.choice(items["kind"], f"{what}.kind", KINDS)
    if not isinstance(kind, str):
        return None
    url_keys = ("base_urls",) if kind == "voxcpm" else ()
    allowed = [*_COMMON, "base_url", *url_keys, *CREDENTIALS[kind], *_OPTIONS.get(kind, ())]
    ok = _check_keys(c, node, what, kind, allowed)

    plan = DEFAULT_PLAN[kind]
    if "plan" in items:
        chosen = c.string(items["plan"], f"{what}.plan")
        if chosen is not None and chosen not in plans_for(kind):
            known = ", ".join(plans_for(kind))
            c.add(
                items["plan"],
                f"unknown plan `{chosen}` for kind {kind}{did_you_mean(chosen, plans_for(kind))}; "
                f"known plans: {known} (or set `limits:` yourself)",
            )
            ok = False
        elif chosen is not None:
            plan = chosen
    limits = _check_limits(c, items["limits"], f"{what}.limits") if "limits" in items else Limits()
    urls = _check_urls(c, items, what)
    credentials = dict(CREDENTIALS[kind])
    for key in CREDENTIALS[kind]:
        if key in items:
            env = c.string(items[key], f"{what}.{key}")
            if env is not None and not _ENV.match(env):
                c.add(
                    items[key],
                    f"`{what}.{key}` names an environment variable (like "
                    f"{CREDENTIALS[kind][key]}), not a value; export the secret and put its "
                    "variable's name here",
                )
                ok = False
            elif env is not None:
                credentials[key] = env
    options: dict[str, ParamValue] = {}
    if "timeout" in items:
        timeout = c.number(items["timeout"], f"{what}.timeout", 1, 3600)
        ok = ok and timeout is not None
        if timeout is not None:
            options["timeout"] = timeout
    for key in _OPTIONS.get(kind, ()):
        if key in items:
            flag = c.boolean(items[key], f"{what}.{key}")
            ok = ok and flag is not None
            if flag is not None:
                options[key] = flag
    if not ok or limits is None or urls is None:
        return None
    effective = effective_limits(kind, plan, limits)
    if kind == "voxcpm" and limits.concurrent is None and len(urls) > 1:
        effective = dataclasses.replace(effective, concurrent=len(urls))  # one per server
    return Account(
        name=name,
        kind=kind,
        plan=plan,
        limits=effective,
        base_urls=urls,
        credentials=credentials,
        options=options,
        defined_in=f"{c.file}:{at[0]}",
    )


def _check_keys(c: Checker, node: Node, what: str, kind: str, allowed: list[str]) -> bool:
    assert isinstance(node.value, dict)
    unknown = [key for key in node.value if key not in allowed]
    for key in unknown:
        at = c.key_at(node, key)
        if any(word in key.lower() for word in _SECRET_WORDS) and not key.endswith("_env"):
            envs = ", ".join(f"`{k}`" for k in CREDENTIALS[kind]) or "none (this kind needs none)"
            c.add(
                at,
                f"`{what}.{key}`: credentials are never written in a manifest; "
                f"put the secret in an environment variable and name it with {envs}",
            )
        else:
            known = ", ".join(f"`{k}`" for k in sorted(allowed))
            c.add(
                at,
                f"unknown key `{key}` in `{what}` (kind {kind}){did_you_mean(key, allowed)}; "
                f"known keys: {known}",
            )
    return not unknown


def _check_limits(c: Checker, node: Node, what: str) -> Limits | None:
    items = c.mapping(node, what)
    if items is None:
        return None
    c.keys(node, f"`{what}`", ("requests", "per_seconds", "concurrent", "max_chars"))
    requests = per_seconds = concurrent = max_chars = None
    if "requests" in items:
        requests = c.integer(items["requests"], f"{what}.requests", 1, 1_000_000)
    if "per_seconds" in items:
        per_seconds = c.number(items["per_seconds"], f"{what}.per_seconds", 0.001, 86_400)
    if "concurrent" in items:
        concurrent = c.integer(items["concurrent"], f"{what}.concurrent", 1, 10_000)
    if "max_chars" in items:
        max_chars = c.integer(items["max_chars"], f"{what}.max_chars", 16, 1_000_000)
    if ("requests" in items) != ("per_seconds" in items):
        c.add(node, f"`{what}`: set `requests` and `per_seconds` together (N requests per T s)")
        return None
    bad = any(
        k in items and v is None
        for k, v in (
            ("requests", requests),
            ("per_seconds", per_seconds),
            ("concurrent", concurrent),
            ("max_chars", max_chars),
        )
    )
    if bad or any(k not in ("requests", "per_seconds", "concurrent", "max_chars") for k in items):
        return None
    return Limits(
        requests=requests,
        per_seconds=None if per_seconds is None else float(per_seconds),
        concurrent=concurrent,
        max_chars=max_chars,
    )


def _check_urls(c: Checker, items: dict[str, Node], what: str) -> tuple[str, ...] | None:
    nodes: list[tuple[Node, str]] = []
    if "base_url" in items and "base_urls" in items:
        c.add(items["base_urls"], f"`{what}`: set `base_url` or `base_urls`, not both")
        return None
    if "base_url" in items:
        nodes.append((items["base_url"], f"{what}.base_url"))
    if "base_urls" in items:
        seq = c.sequence(items["base_urls"], f"{what}.base_urls")
        if seq is None:
            return None
        if not seq:
            c.add(items["base_urls"], f"`{what}.base_urls` must list at least one URL")
            return None
        nodes.extend((n, f"{what}.base_urls[{i}]") for i, n in enumerate(seq))
    urls: list[str] = []
    for n, label in nodes:
        url = c.string(n, label)
        if url is None:
            return None
        if not _URL.match(url):
            c.add(n, f"`{label}` must be an http:// or https:// URL, not {url!r}")
            return None
        urls.append(url.rstrip("/"))
    if len(set(urls)) != len(urls):
        c.add(items["base_urls"], f"`{what}.base_urls` lists the same URL twice")
        return None
    return tuple(urls)


def resolve_relative(base: Path, name: str) -> Path:
    return (base / Path(name).expanduser()).resolve()

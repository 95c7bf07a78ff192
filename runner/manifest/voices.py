"""The `voices:` and `defaults:` sections: named voices, each an account plus that provider
kind's parameters, with defaults filling in what a voice leaves unset."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from runner.manifest.check import Checker, did_you_mean
from runner.manifest.model import Account, Voice
from runner.manifest.params import ParamValue, check_param
from runner.manifest.voice_params import NOT_TAKEN, PARAMS, RULES
from runner.manifest.yamlpos import Node
from runner.providers.espeak import variant_names, voice_names

__all__ = ["check_combination", "check_default_keys", "check_voices", "default_voice_of"]

IMPLICIT_VOICE = "default"


def _all_param_names() -> set[str]:
    return {name for params in PARAMS.values() for name in params}


def check_default_keys(c: Checker, node: Node, defaults: dict[str, Node]) -> None:
    known = {"voice", *_all_param_names()}
    for key in defaults:
        if key not in known:
            c.add(
                c.key_at(node, key),
                f"unknown key `{key}` in `defaults`{did_you_mean(key, known)}; "
                "defaults take `voice` and voice parameters",
            )


def check_voices(
    c: Checker,
    node: Node | None,
    accounts: dict[str, Account],
    written: Mapping[str, str | None],
    defaults: dict[str, Node],
    base: Path,
    declared: Collection[str] | None = None,
) -> tuple[dict[str, Voice], set[str]]:
    """The valid voices, and the names of all voices written (valid or not).

    `written` maps every account name written to its kind, None when the kind is invalid.
    `declared` (default: all of `written`) are the accounts a voice without `provider:` may
    imply: the manifest's own, never a providers file's.
    """
    declared = set(written if declared is None else declared) - {"local"}
    if node is None:
        params = _apply_defaults(c, "local", {}, defaults, base) or {}
        if "voice" not in params:
            params.setdefault("language", "auto")
        return {IMPLICIT_VOICE: Voice(IMPLICIT_VOICE, "local", "local", params)}, {IMPLICIT_VOICE}
    items = c.mapping(node, "voices")
    voices: dict[str, Voice] = {}
    for name, body in (items or {}).items():
        what = f"voices.{name}"
        spec = c.mapping(body, what)
        if spec is None:
            continue
        if "provider" in spec:
            account = c.string(spec["provider"], f"{what}.provider")
            if account is not None and account not in accounts and account not in written:
                known = ", ".join(sorted(accounts))
                c.add(
                    spec["provider"],
                    f"`{what}.provider`: no account named `{account}`"
                    f"{did_you_mean(account, accounts)}; accounts: {known}",
                )
                continue
        elif len(declared) == 1:
            account = next(iter(declared))
        elif not declared:
            account = "local"
        else:
            c.add(body, f"`{what}` needs `provider:` — one of {', '.join(sorted(declared))}")
            continue
        if account is None:
            continue
        kind = accounts[account].kind if account in accounts else written[account]
        if kind is None:
            continue  # the account's own problems are reported where it is defined
        own = {k: v for k, v in spec.items() if k != "provider"}
        checked = _check_params(c, body, what, kind, own, base)
        merged = _apply_defaults(c, kind, checked or {}, defaults, base)
        if checked is None or merged is None:
            continue
        if kind == "local" and "voice" not in merged:
            merged.setdefault("language", "auto")
        if check_combination(c, body, what, kind, merged) and account in accounts:
            voices[name] = Voice(name, account, kind, merged)
    return voices, set(items or {})


def _check_params(
    c: Checker, node: Node, what: str, kind: str, items: dict[str, Node], base: Path
) -> dict[str, ParamValue] | None:
    """Check voice parameters (their own ranges only; combinations are checked by the caller)."""
    specs = PARAMS[kind]
    out: dict[str, ParamValue] = {}
    ok = True
    for key, child in items.items():
        if key not in specs:
            c.add(
                c.key_at(node, key),
                f"unknown parameter `{key}` in `{what}` for provider kind {kind}"
                f"{did_you_mean(key, specs)}; {kind} takes: {', '.join(sorted(specs))}",
            )
            ok = False
            continue
        value = check_param(c, child, f"{what}.{key}", specs[key], base)
        if value is None:
            ok = False
        else:
            out[key] = value
    return out if ok else None


def check_combination(
    c: Checker, node: Node, what: str, kind: str, params: Mapping[str, ParamValue]
) -> bool:
    """Report invalid combinations; True when there are none."""
    found = RULES[kind](params)
    if kind == "local":
        found += _local_voice_problems(params)
    for name, message in found:
        where = node.key_positions.get(name, (node.line, node.column)) if name else node
        c.add(where, f"`{what}`: {message}")
    return not found


def _local_voice_problems(params: Mapping[str, ParamValue]) -> list[tuple[str, str]]:
    voice = params.get("voice")
    if not isinstance(voice, str):
        return []
    name, _, variant = voice.lower().partition("+")
    known = voice_names()
    if name not in known:
        return [("voice", f"espeak-ng has no voice `{name}`{did_you_mean(name, known)}")]
    if variant and variant not in variant_names():
        return [
            (
                "voice",
                f"espeak-ng has no variant `{variant}`{did_you_mean(variant, variant_names())}",
            )
        ]
    return []


def _apply_defaults(
    c: Checker, kind: str, params: dict[str, ParamValue], defaults: dict[str, Node], base: Path
) -> dict[str, ParamValue] | None:
    """Defaults fill in the parameters a voice leaves unset, where its kind (and its mode: see
    `NOT_TAKEN`) takes them."""
    merged = dict(params)
    ok = True
    for key, child in defaults.items():
        if key == "voice":
            continue  # `defaults.voice` names the default voice; it is not a parameter
        if key in PARAMS[kind] and key not in merged:
            value = check_param(c, child, f"defaults.{key}", PARAMS[kind][key], base)
            if value is None:
                ok = False
            else:
                merged[key] = value
    if kind in NOT_TAKEN:
        for key in NOT_TAKEN[kind](merged) - params.keys():
            merged.pop(key, None)  # a default this voice's mode has no field for
    return merged if ok else None


def default_voice_of(
    c: Checker, defaults: dict[str, Node], voices: dict[str, Voice], written: set[str]
) -> str | None:
    if "voice" in defaults:
        name = c.string(defaults["voice"], "defaults.voice")
        # an invalid voice is reported where it is defined
        if name is not None and name not in voices and name not in written:
            c.add(
                defaults["voice"],
                f"`defaults.voice`: no voice named `{name}`{did_you_mean(name, written)}; "
                f"voices: {', '.join(sorted(written)) or '(none defined)'}",
            )
        return name  # when it is not valid, its texts are not checked against it a second time
    return next(iter(voices)) if len(voices) == 1 else None

"""Load and validate manifests: YAML → `Manifest`, or a `ManifestError` listing every problem.

Nothing is sent or written here; a manifest with any problem never reaches the rest of the
runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.errors import ManifestError, Problem
from runner.manifest.accounts import IMPLICIT_LOCAL, account_kinds, check_accounts
from runner.manifest.check import Checker, closest
from runner.manifest.model import Account, Manifest, Output
from runner.manifest.texts import check_texts
from runner.manifest.voices import check_default_keys, check_voices, default_voice_of
from runner.manifest.yamlpos import Node, parse_yaml, read_text_file

__all__ = ["load_manifest", "load_manifests"]

TOP_KEYS = ("version", "name", "priority", "output", "providers", "voices", "defaults", "texts")
OUTPUT_KEYS = (
    "dir",
    "format",
    "pause_ms",
    "paragraph_pause_ms",
    "chapter_pause_ms",
    "sample_rate",
    "loudness",
    "normalize",
    "book",
    "author",
    "narrator",
    "cover",
)
OUTPUT_FORMATS = ("wav", "flac", "mp3", "m4b")
#: Rates every output encoder takes (mp3 is the narrowest).
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
LOUDNESS_RANGE = (-40.0, -5.0)  #: LUFS targets accepted for `output.loudness`
#: `loudness: acx`: ACX asks for −23 to −18 LUFS and peaks at most −3 dBFS; aim at the middle.
ACX = {"loudness": -20.0, "loudness_window": (-23.0, -18.0), "peak_dbfs": -3.0, "preset": "acx"}
#: The ceiling for a plain LUFS target: EBU R128's −1 dBTP, applied to the sample peak.
DEFAULT_PEAK_DBFS = -1.0
_IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


def load_manifests(
    paths: Sequence[Path], registry: Mapping[str, Account] | None = None
) -> list[Manifest]:
    """Load several manifests; raises one ManifestError with the problems of all of them."""
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            manifests.append(load_manifest(path, registry))
        except ManifestError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ManifestError(problems)
    return manifests


def load_manifest(path: Path, registry: Mapping[str, Account] | None = None) -> Manifest:
    path = path.expanduser().resolve()
    shown = str(path)
    try:
        source = read_text_file(path)
    except FileNotFoundError:
        raise ManifestError([Problem(shown, 0, 0, "manifest file not found")]) from None
    except IsADirectoryError:
        raise ManifestError([Problem(shown, 0, 0, "is a directory, not a manifest")]) from None
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem(shown, 0, 0, f"is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ManifestError([Problem(shown, 0, 0, f"cannot read: {exc.strerror}")]) from None
    root, problems = parse_yaml(source, shown)
    if root is None:
        raise ManifestError(problems)
    c = Checker(shown)
    c.problems.extend(problems)
    manifest = _check_manifest(c, root, path, dict(registry or {}))
    if c.problems or manifest is None:
        raise ManifestError(c.problems)
    return manifest


def _check_manifest(
    c: Checker, root: Node, path: Path, registry: dict[str, Account]
) -> Manifest | None:
    if not isinstance(root.value, dict):
        c.add(
            root,
            "the manifest must be a mapping of `key: value` lines, starting with `texts:` "
            f"(e.g. `texts: [{{text: Hello}}]`), not {root.kind}",
        )
        return None
    top: dict[str, Node] = root.value
    c.keys(root, "the manifest", TOP_KEYS)
    if "version" in top:
        c.choice(top["version"], "version", (1,))
    name = path.stem
    if "name" in top:
        name = c.string(top["name"], "name") or name
    priority = 0
    if "priority" in top:  # among manifests run together on one account: higher goes first
        priority = c.integer(top["priority"], "priority", -100, 100) or 0
    output = _check_output(c, top.get("output"), path.parent, name)

    accounts = dict(registry)
    # every account name written, valid or not (an invalid one is reported once), with its kind
    # when that is valid: the voices of an invalid account still get their parameters checked
    written: dict[str, str | None] = {k: a.kind for k, a in registry.items()}
    own: dict[str, str | None] = {}  # the manifest's own accounts (registry ones are never implied)
    if "providers" in top:
        _check_not_shadowing(c, top["providers"], registry)
        accounts.update(check_accounts(c, top["providers"]))
        own = account_kinds(top["providers"])
        written.update(own)
    if IMPLICIT_LOCAL.name not in written:
        accounts[IMPLICIT_LOCAL.name] = IMPLICIT_LOCAL

    defaults: dict[str, Node] = {}
    if "defaults" in top:
        defaults = c.mapping(top["defaults"], "defaults") or {}
        check_default_keys(c, top["defaults"], defaults)
    voices, voice_names = check_voices(
        c, top.get("voices"), accounts, written, defaults, path.parent, declared=own
    )
    default_voice = default_voice_of(c, defaults, voices, voice_names)

    if "texts" not in top:
        if not any(closest(key, TOP_KEYS) == "texts" for key in top):  # else: a typo, reported
            c.add(root, "the manifest has no `texts`; add a list such as `texts: [{text: Hello}]`")
        return None
    texts = check_texts(c, top["texts"], path.parent, voices, voice_names, default_voice)
    if output is None or texts is None or c.problems:
        return None
    used = {voices[t.voice].account for t in texts}
    return Manifest(
        path=path,
        name=name,
        priority=priority,
        output=output,
        accounts={k: v for k, v in accounts.items() if k in used},
        voices=voices,
        texts=tuple(texts),
    )


def _check_not_shadowing(c: Checker, node: Node, registry: Mapping[str, Account]) -> None:
    """A manifest may not redefine a registry account: silently swapping the account (and the
    plan, the credentials) a paid run uses is worse than an error that names both places."""
    for name in node.value if isinstance(node.value, dict) else ():
        if name in registry:
            c.add(
                c.key_at(node, name),
                f"account `{name}` is already defined in the providers file at "
                f"{registry[name].defined_in}; a manifest may not redefine a registry account: "
                "delete it here to use the registry's, or give this one another name",
            )


def _check_output(c: Checker, node: Node | None, base: Path, name: str) -> Output | None:
    # checked values are Output's fields by name; what no check passed keeps Output's default
    values: dict[str, Any] = {"dir": "out", "format": "wav", "pause_ms": 300}
    values["paragraph_pause_ms"] = 800
    if node is not None:
        items = c.mapping(node, "output")
        if items is None:
            return None
        c.keys(node, "`output`", OUTPUT_KEYS)
        ok = True
        for key, check in _output_checks(c, base).items():
            if key in items:
                value = check(items[key])
                ok = ok and value is not None
                values[key] = value
        if not ok:
            return None
    directory = (base / Path(str(values.pop("dir"))).expanduser()).resolve()
    values.update(values.pop("loudness", {}))
    return Output(directory, **values)


def _output_checks(c: Checker, base: Path) -> dict[str, Callable[[Node], object]]:
    def pause(key: str) -> Callable[[Node], object]:
        return lambda n: c.integer(n, f"output.{key}", 0, 60_000)

    return {
        "dir": lambda n: c.string(n, "output.dir"),
        "format": lambda n: c.choice(n, "output.format", OUTPUT_FORMATS),
        "pause_ms": pause("pause_ms"),
        "paragraph_pause_ms": pause("paragraph_pause_ms"),
        "chapter_pause_ms": pause("chapter_pause_ms"),
        "sample_rate": lambda n: c.choice(n, "output.sample_rate", SAMPLE_RATES),
        "loudness": lambda n: _check_loudness(c, n),
        "normalize": lambda n: c.choice(n, "output.normalize", ("chapter", "book")),
        "book": lambda n: c.boolean(n, "output.book"),
        "author": lambda n: c.string(n, "output.author"),
        "narrator": lambda n: c.string(n, "output.narrator"),
        "cover": lambda n: _check_cover(c, n, base),
    }


def _check_loudness(c: Checker, node: Node) -> dict[str, object] | None:
    """`-18` (a LUFS target), `acx`, or `off` (YAML reads a bare `off` as false)."""
    value = node.value
    if value is False or value == "off":
        return {"loudness": None}
    if value == "acx":
        return dict(ACX)
    lo, hi = LOUDNESS_RANGE
    if isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi:
        return {"loudness": float(value), "peak_dbfs": DEFAULT_PEAK_DBFS}
    shown = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, (dict, list)) or value is None or value is True:
        shown = node.kind
    c.add(
        node,
        f"`output.loudness` is {shown}; it must be a target in LUFS from {lo:g} to {hi:g} "
        "(e.g. -18, written without quotes or unit), `acx` (-23 to -18 LUFS, peaks at most "
        "-3 dBFS) or `off`",
    )
    return None


def _check_cover(c: Checker, node: Node, base: Path) -> Path | None:
    written = c.string(node, "output.cover")
    if written is None:
        return None
    path = (base / Path(written).expanduser()).resolve()
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        c.add(node, f"`output.cover`: file not found: {path}; give a JPEG or PNG image")
        return None
    except OSError as exc:
        c.add(node, f"`output.cover`: cannot read {path}: {exc.strerror}")
        return None
    if not any(head.startswith(magic) for magic in _IMAGE_MAGIC):
        c.add(
            node,
            f"`output.cover` must be a JPEG or PNG image; {written!r} is neither "
            "(its first bytes are no image signature)",
        )
        return None
    return path

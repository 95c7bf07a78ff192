"""Load and validate manifests: YAML → `Manifest`, or a `ManifestError` listing every problem.

Nothing is sent or written here; a manifest with any problem never reaches the rest of the
runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from runner.errors import ManifestError, Problem
from runner.manifest.accounts import IMPLICIT_LOCAL, account_kinds, check_accounts
from runner.manifest.check import Checker, closest
from runner.manifest.model import Account, Manifest, Output
from runner.manifest.texts import check_texts
from runner.manifest.voices import check_default_keys, check_voices, default_voice_of
from runner.manifest.yamlpos import Node, parse_yaml, read_text_file

__all__ = ["load_manifest", "load_manifests"]

TOP_KEYS = ("version", "name", "output", "providers", "voices", "defaults", "texts")
OUTPUT_KEYS = ("dir", "format", "pause_ms", "paragraph_pause_ms")
OUTPUT_FORMATS = ("wav",)


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
    output = _check_output(c, top.get("output"), path.parent, name)

    accounts = dict(registry)
    # every account name written, valid or not (an invalid one is reported once), with its kind
    # when that is valid: the voices of an invalid account still get their parameters checked
    written: dict[str, str | None] = {k: a.kind for k, a in registry.items()}
    if "providers" in top:
        accounts.update(check_accounts(c, top["providers"]))
        written.update(account_kinds(top["providers"]))
    if IMPLICIT_LOCAL.name not in written:
        accounts[IMPLICIT_LOCAL.name] = IMPLICIT_LOCAL

    defaults: dict[str, Node] = {}
    if "defaults" in top:
        defaults = c.mapping(top["defaults"], "defaults") or {}
        check_default_keys(c, top["defaults"], defaults)
    voices, voice_names = check_voices(
        c, top.get("voices"), accounts, written, defaults, path.parent
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
        output=output,
        accounts={k: v for k, v in accounts.items() if k in used},
        voices=voices,
        texts=tuple(texts),
    )


def _check_output(c: Checker, node: Node | None, base: Path, name: str) -> Output | None:
    values: dict[str, object] = {
        "dir": "out",
        "format": "wav",
        "pause_ms": 300,
        "paragraph_pause_ms": 800,
    }
    if node is not None:
        items = c.mapping(node, "output")
        if items is None:
            return None
        c.keys(node, "`output`", OUTPUT_KEYS)
        checks: dict[str, Callable[[Node], object]] = {
            "dir": lambda n: c.string(n, "output.dir"),
            "format": lambda n: c.choice(n, "output.format", OUTPUT_FORMATS),
            "pause_ms": lambda n: c.integer(n, "output.pause_ms", 0, 60_000),
            "paragraph_pause_ms": lambda n: c.integer(n, "output.paragraph_pause_ms", 0, 60_000),
        }
        ok = True
        for key, check in checks.items():
            if key in items:
                value = check(items[key])
                ok = ok and value is not None
                values[key] = value
        if not ok:
            return None
    directory = (base / Path(str(values["dir"])).expanduser()).resolve()
    pause, paragraph = values["pause_ms"], values["paragraph_pause_ms"]
    assert isinstance(pause, int)
    assert isinstance(paragraph, int)
    return Output(directory, str(values["format"]), pause, paragraph)

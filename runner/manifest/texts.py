"""The `texts:` section: which words to speak, with which voice, under which chapter id."""

from __future__ import annotations

import re
from pathlib import Path

from runner.manifest.check import Checker, closest, did_you_mean
from runner.manifest.model import Text, Voice
from runner.manifest.params import ParamValue, check_param
from runner.manifest.voice_params import PARAMS
from runner.manifest.voices import check_combination
from runner.manifest.yamlpos import Node, read_text_file

__all__ = ["check_texts"]

TEXT_KEYS = ("id", "title", "text", "file", "glob", "voice")
_SOURCES = ("text", "file", "glob")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def check_texts(
    c: Checker,
    node: Node,
    base: Path,
    voices: dict[str, Voice],
    written: set[str],
    default_voice: str | None,
) -> list[Text] | None:
    items = c.sequence(node, "texts")
    if items is None:
        return None
    if not items:
        c.add(node, "`texts` is empty; list at least one text, e.g. `- {text: Hello}`")
        return None
    texts: list[Text] = []
    first_seen: dict[str, int] = {}
    for i, item in enumerate(items):
        context = _Item(c, item, f"texts[{i}]", i, base, voices, written, default_voice)
        texts.extend(context.check())
        # ids are compared even where the rest of an item is invalid, so that every duplicate
        # is reported in the same pass as the other problems
        for text_id in context.ids:
            if text_id in first_seen:
                c.add(
                    item,
                    f"duplicate text id `{text_id}` (first used on line {first_seen[text_id]}); "
                    "ids name the output files, so each must be unique",
                )
            else:
                first_seen[text_id] = item.line
    return texts


class _Item:
    def __init__(
        self,
        c: Checker,
        node: Node,
        what: str,
        index: int,
        base: Path,
        voices: dict[str, Voice],
        written: set[str],
        default_voice: str | None,
    ) -> None:
        self.c, self.node, self.what, self.index, self.base = c, node, what, index, base
        self.voices, self.written, self.default_voice = voices, written, default_voice
        self.ids: list[str] = []  #: the ids this item names, known even when it is invalid

    def check(self) -> list[Text]:
        c, node, what = self.c, self.node, self.what
        implicit_id = f"text-{self.index + 1}"
        if isinstance(node.value, str):  # shorthand: `- Some words to speak.`
            self.ids.append(implicit_id)
            voice = self._voice(None)
            body = c.string(node, what)
            if voice is None or body is None:
                return []
            return [Text(implicit_id, implicit_id, body, voice.name, voice.params)]
        spec = c.mapping(node, what)
        if spec is None:
            return []
        voice = self._voice(spec.get("voice"))
        suggested = self._check_keys(spec, voice)
        params = self._params(spec, voice) if voice is not None else None
        sources = [k for k in ("text", "file", "glob") if k in spec]
        typo = not sources and any(k in _SOURCES for k in suggested)  # `txt:` is reported
        if len(sources) != 1 and not typo:
            shown = " and ".join(f"`{k}`" for k in sources) if sources else "none"
            c.add(node, f"`{what}` needs exactly one of `text`, `file` or `glob` (has {shown})")
        if len(sources) != 1:
            return []
        if sources[0] == "glob":
            found = self._glob(spec)
            if voice is None or params is None:
                return []
            return [Text(i, t, b, voice.name, params, p) for i, t, b, p in found]
        text_id = self._id(spec["id"], f"{what}.id") if "id" in spec else implicit_id
        if text_id is not None:
            self.ids.append(text_id)
        title = c.string(spec["title"], f"{what}.title") if "title" in spec else text_id
        if sources[0] == "text":
            body, source = c.string(spec["text"], f"{what}.text"), None
        else:
            body, source = self._read(spec["file"], f"{what}.file")
        if text_id is None or title is None or body is None or voice is None or params is None:
            return []
        return [Text(text_id, title, body, voice.name, params, source)]

    def _voice(self, node: Node | None) -> Voice | None:
        c, voices = self.c, self.voices
        if node is None:
            if self.default_voice is None:
                if voices:
                    c.add(
                        self.node,
                        f"`{self.what}` has no voice; set `voice:` here or `defaults.voice` "
                        f"(voices: {', '.join(sorted(voices))})",
                    )
                return None
            return voices.get(self.default_voice)
        name = c.string(node, f"{self.what}.voice")
        if name is None or (name in self.written and name not in voices):
            return None  # an invalid voice is reported where it is defined
        if name not in voices:
            c.add(
                node,
                f"`{self.what}.voice`: no voice named `{name}`{did_you_mean(name, self.written)}; "
                f"voices: {', '.join(sorted(self.written)) or '(none defined)'}",
            )
            return None
        return voices[name]

    def _check_keys(self, spec: dict[str, Node], voice: Voice | None) -> set[str]:
        """Reports unknown keys; returns the known keys suggested for them."""
        known = list(TEXT_KEYS)
        if voice is not None:
            known += PARAMS[voice.kind]
        suggested: set[str] = set()
        for key in spec:
            if key in known:
                continue
            if voice is None and any(key in params for params in PARAMS.values()):
                continue  # a parameter override; checked once the voice is known
            extra = (
                f" ({voice.kind} voice parameters: {', '.join(PARAMS[voice.kind])})"
                if voice
                else ""
            )
            self.c.add(
                self.c.key_at(self.node, key),
                f"unknown key `{key}` in `{self.what}`{did_you_mean(key, known)}; "
                f"a text takes {', '.join(f'`{k}`' for k in TEXT_KEYS)}{extra}",
            )
            close = closest(key, known)
            if close is not None:
                suggested.add(close)
        return suggested

    def _params(self, spec: dict[str, Node], voice: Voice) -> dict[str, ParamValue] | None:
        specs = PARAMS[voice.kind]
        # `voice:` on a text names a manifest voice, never the local engine's voice parameter
        overrides = {k: v for k, v in spec.items() if k in specs and k not in TEXT_KEYS}
        params = dict(voice.params)
        ok = True
        for key, child in overrides.items():
            value = check_param(self.c, child, f"{self.what}.{key}", specs[key], self.base)
            if value is None:
                ok = False
            else:
                params[key] = value
        if not ok or not overrides:
            return params if ok else None
        if not check_combination(self.c, self.node, self.what, voice.kind, params):
            return None
        return params

    def _id(self, node: Node, what: str) -> str | None:
        text_id = self.c.string(node, what)
        if text_id is not None and not _ID.match(text_id):
            safe = _UNSAFE.sub("-", text_id).strip("-._")[:100]
            self.c.add(
                node,
                f"`{what}` is {text_id!r}; an id names output files, so use letters, digits, "
                "`.`, `_` and `-` (starting with a letter or digit, at most 100)"
                + (f", e.g. `{safe}`" if safe else ""),
            )
            return None
        return text_id

    def _read(self, node: Node, what: str) -> tuple[str | None, Path | None]:
        name = self.c.string(node, what)
        if name is None:
            return None, None
        path = (self.base / Path(name).expanduser()).resolve()
        try:
            body = read_text_file(path)
        except FileNotFoundError:
            self.c.add(node, f"`{what}`: file not found: {path}")
            return None, None
        except UnicodeDecodeError as exc:
            self.c.add(
                node, f"`{what}`: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            )
            return None, None
        except OSError as exc:
            self.c.add(node, f"`{what}`: cannot read {path}: {exc.strerror}")
            return None, None
        if not body.strip():
            self.c.add(node, f"`{what}`: {path} is empty")
            return None, None
        return body, path

    def _glob(self, spec: dict[str, Node]) -> list[tuple[str, str, str, Path | None]]:
        """(id, title, body, source) for each file the pattern matches, sorted by path."""
        c, what = self.c, self.what
        for key in ("id", "title"):
            if key in spec:
                c.add(
                    c.key_at(self.node, key),
                    f"`{what}.{key}` cannot be set with `glob`: each matched file's name is its "
                    f"{key}; list the files one by one to choose ids and titles",
                )
        pattern = c.string(spec["glob"], f"{what}.glob")
        if pattern is None:
            return []
        if Path(pattern).is_absolute():
            c.add(spec["glob"], f"`{what}.glob` must be relative to the manifest's folder")
            return []
        matches = sorted(p for p in self.base.glob(pattern) if p.is_file())
        if not matches:
            c.add(spec["glob"], f"`{what}.glob`: {pattern!r} matches no file in {self.base}")
            return []
        found: list[tuple[str, str, str, Path | None]] = []
        at = spec["glob"]
        for path in matches:
            body, source = self._read(Node(str(path), at.line, at.column), f"{what}.glob")
            text_id = _UNSAFE.sub("-", path.stem).strip("-._") or f"text-{len(found) + 1}"
            self.ids.append(text_id)
            if body is not None:
                found.append((text_id, path.stem, body, source))
        return found

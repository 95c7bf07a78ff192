"""The account registry: a providers file outside the manifests, for the accounts of a machine.

Limits, plans and credentials belong to an account, not to a book, so they may be written once
in a providers file and named by any manifest (a voice's `provider: NAME`). The file takes the
keys of a manifest's `providers:` section and is checked by the same code, so its problems point
into it with file:line:column:

```yaml
version: 1            # optional
providers:
  tts:   {kind: ttsai, plan: pro, api_key_env: TTSAI_API_KEY}
  index: {kind: indextts, sign_env: INDEX_API_SIGN}
```

Which file (the first that applies): `--providers FILE`, then the environment variable
`TTS_RUNNER_PROVIDERS`, then `$XDG_CONFIG_HOME/tts-runner/providers.yaml` (by default
`~/.config/tts-runner/providers.yaml`). A file named by the flag or the variable must exist; the
default one may be absent (no registry accounts).

A manifest may still define accounts of its own, but not one with a registry account's name:
that is an error naming both places (runner/manifest/load.py), never a silent override.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from runner.errors import ManifestError, Problem
from runner.manifest.accounts import IMPLICIT_LOCAL, check_accounts
from runner.manifest.check import Checker
from runner.manifest.model import Account
from runner.manifest.yamlpos import parse_yaml, read_text_file

__all__ = [
    "ENV_VAR",
    "RegistryLocation",
    "default_registry_path",
    "load_registry",
    "open_registry",
    "registry_location",
]

#: The environment variable naming the providers file (below `--providers`, above the default).
ENV_VAR: Final = "TTS_RUNNER_PROVIDERS"
#: Where the file was named: by the command line, the environment, or nowhere (the default).
FLAG, ENVIRONMENT, DEFAULT = "--providers", ENV_VAR, "default"

_TOP_KEYS = ("version", "providers")
_EMPTY = "the file is empty"  # parse_yaml's message for a file without a document


@dataclass(frozen=True)
class RegistryLocation:
    path: Path  #: absolute
    origin: str  #: FLAG, ENVIRONMENT or DEFAULT

    @property
    def required(self) -> bool:
        """A file someone named must exist; the default one may be absent."""
        return self.origin != DEFAULT

    def describe(self) -> str:
        if self.origin == FLAG:
            return "named by --providers"
        if self.origin == ENVIRONMENT:
            return f"named by ${ENV_VAR}"
        return "the default location"


def default_registry_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or ""
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = Path(config) if Path(config).is_absolute() else home / ".config"  # as XDG says
    return (base / "tts-runner" / "providers.yaml").resolve()


def registry_location(
    flag: Path | None = None, environ: Mapping[str, str] | None = None
) -> RegistryLocation:
    """Which providers file applies: the flag's, else the environment variable's, else the
    default (an empty variable counts as unset)."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return RegistryLocation(flag.expanduser().resolve(), FLAG)
    if env.get(ENV_VAR):
        return RegistryLocation(Path(env[ENV_VAR]).expanduser().resolve(), ENVIRONMENT)
    return RegistryLocation(default_registry_path(env), DEFAULT)


def open_registry(
    flag: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Account]:
    """The accounts of the providers file that applies (see `registry_location`)."""
    where = registry_location(flag, environ)
    return load_registry(where.path, required=where.required, named_by=where.describe())


def load_registry(path: Path, *, required: bool = True, named_by: str = "") -> dict[str, Account]:
    """The accounts of a providers file; raises ManifestError listing every problem in it.

    A missing file is an error when `required`, else no accounts.
    """
    path = path.expanduser().resolve()
    shown = str(path)
    why = f" ({named_by})" if named_by else ""
    try:
        source = read_text_file(path)
    except FileNotFoundError:
        if not required:
            return {}
        raise ManifestError([Problem(shown, 0, 0, f"providers file not found{why}")]) from None
    except IsADirectoryError:
        problem = Problem(shown, 0, 0, f"is a directory, not a providers file{why}")
        raise ManifestError([problem]) from None
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem(shown, 0, 0, f"is not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ManifestError([Problem(shown, 0, 0, f"cannot read: {exc.strerror}")]) from None
    root, problems = parse_yaml(source, shown)
    if root is None:
        if len(problems) == 1 and problems[0].message.startswith(_EMPTY):
            return {}  # an empty (or all-comment) providers file has no accounts
        raise ManifestError(problems)
    c = Checker(shown)
    c.problems.extend(problems)
    accounts: dict[str, Account] = {}
    if not isinstance(root.value, dict):
        c.add(
            root,
            "a providers file must be a mapping with the accounts under `providers:` "
            f"(e.g. `providers: {{tts: {{kind: ttsai, plan: pro}}}}`), not {root.kind}",
        )
    else:
        top = root.value
        c.keys(root, "the providers file", _TOP_KEYS, hint="; accounts go under `providers:`")
        if "version" in top:
            c.choice(top["version"], "version", (1,))
        node = top.get("providers")
        if node is not None and node.value is not None:  # `providers:` left empty: none
            accounts = check_accounts(c, node)
            if isinstance(node.value, dict) and IMPLICIT_LOCAL.name in node.value:
                c.add(
                    c.key_at(node, IMPLICIT_LOCAL.name),
                    f"`{IMPLICIT_LOCAL.name}` is the embedded engine every manifest has; give "
                    "this account another name",
                )
                accounts.pop(IMPLICIT_LOCAL.name, None)
    if c.problems:
        raise ManifestError(c.problems)
    return accounts

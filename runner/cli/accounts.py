"""Commands about a provider account rather than a manifest's texts: `voices` (voice models at
the provider), `refs` (IndexTTS emotion references) and `quota` (credit left).

Each command names an account of a manifest (`--provider ACCOUNT`), reads its credentials
from the environment variables the manifest names, and talks to the provider through the
account's adapter, paced by the account's limits. With `--sandbox` it talks to a fresh
in-process emulator instead (nothing persists between two commands). Secrets never reach the
output: every line and every error passes through the redactor that knows them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio

from runner.cli.account_actions import ACTIONS, Action
from runner.cli.options import add_providers_option, registry_of
from runner.errors import RunnerError, Unsupported, UsageError
from runner.events import Events, Redactor
from runner.manifest import Account, Manifest, load_manifest
from runner.pacing import Pacing
from runner.providers import ProviderContext, adapter_class, create_provider, missing_credentials
from runner.providers.base import Provider, Quota
from runner.run import RunOptions, state_dir_for
from runner.stats import AccountStats
from runner.store import Store

__all__ = ["add_commands", "connect"]

#: Why an operation cannot be done, per Provider method, for the "unsupported" message.
_CANNOT: Final = {
    "list_voices": "list voice models",
    "create_voice": "create voice models",
    "delete_voice": "delete voice models",
    "quota": "report the credit left",
    "refs": "keep emotion references (only IndexTTS has them)",
}


def add_commands(commands: Any) -> None:
    voices = commands.add_parser(
        "voices",
        help="list, create or delete voice models at a provider account",
        description="Voice models at the provider: IndexTTS models, Fish (yuntts) models, the "
        "TTS.ai voice catalogue. Exit 2 when the account's API has no such operation.",
    )
    refs = commands.add_parser(
        "refs",
        help="list, upload or delete IndexTTS emotion references",
        description="Emotion references of an IndexTTS account (kept 24 h, at most 30 live).",
    )
    for parser, kind in ((voices, "voices"), (refs, "refs")):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        for action in ACTIONS[kind]:
            sub = actions.add_parser(action.name, help=action.help)
            _common(sub)
            action.arguments(sub)
            sub.set_defaults(handler=_handler(action))

    quota = commands.add_parser(
        "quota",
        help="remaining credits or characters per account, where the API tells",
        description="Ask each account of MANIFEST (or only ACCOUNT) how much credit is left. "
        "Accounts whose API does not report it say so. Exit 2 when the named ACCOUNT cannot "
        "report it or a credential is missing, 1 when a provider call failed.",
    )
    quota.add_argument("account", nargs="?", metavar="ACCOUNT")
    quota.add_argument("manifest", type=Path, metavar="MANIFEST")
    quota.add_argument("--sandbox", action="store_true", help="ask in-process emulators instead")
    quota.add_argument("--json", action="store_true", help="machine-readable output")
    add_providers_option(quota)
    quota.set_defaults(handler=cmd_quota)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    add_providers_option(parser)
    parser.add_argument(
        "--provider",
        metavar="ACCOUNT",
        help="the manifest's account (default: its only account that can do this)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="talk to a fresh in-process emulator of the provider: no keys, nothing kept",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="state directory whose records a delete updates (default: beside the manifest)",
    )


# -- choosing the account ------------------------------------------------------------------------


def supports(account: Account, operation: str) -> bool:
    """Whether the account's adapter has `operation` at all (a Provider method, or "refs")."""
    if operation == "refs":
        return account.kind == "indextts"
    return getattr(adapter_class(account.kind), operation) is not getattr(Provider, operation)


def unsupported(manifest: Manifest, account: Account, operation: str) -> Unsupported:
    able = sorted(a.name for a in manifest.accounts.values() if supports(a, operation))
    hint = f"; accounts of this manifest that can: {', '.join(able)}" if able else ""
    return Unsupported(
        f"account `{account.name}` is a {account.kind} account, and the {account.kind} API "
        f"cannot {_CANNOT[operation]}; nothing was sent{hint}"
    )


def choose_account(manifest: Manifest, name: str | None, operation: str) -> Account:
    """The named account (which must be able to do `operation`), or the only one that can."""
    if name is not None:
        account = manifest.accounts.get(name)
        if account is None:
            known = ", ".join(sorted(manifest.accounts)) or "none"
            raise UsageError(
                f"{manifest.path} has no account `{name}` in use (in use: {known}); a manifest "
                "keeps only the accounts whose voices some text speaks with"
            )
        if not supports(account, operation):
            raise unsupported(manifest, account, operation)
        return account
    able = sorted(
        (a for a in manifest.accounts.values() if supports(a, operation)), key=lambda a: a.name
    )
    if len(able) == 1:
        return able[0]
    if not able:
        raise Unsupported(
            f"no account of {manifest.path} can {_CANNOT[operation]}; nothing was sent"
        )
    names = ", ".join(a.name for a in able)
    raise UsageError(
        f"several accounts of {manifest.path} can {_CANNOT[operation]}: {names}; "
        "name one with --provider"
    )


# -- talking to it ------------------------------------------------------------------------------


@asynccontextmanager
async def connect(
    account: Account,
    *,
    sandbox: bool,
    redactor: Redactor,
    store_dir: Path | None = None,
    create_store: bool = False,
) -> AsyncIterator[Provider]:
    """The account's adapter, ready to use; closed (shielded) on the way out.

    Credentials come only from the environment variables the manifest names; a missing one is
    a usage error that names the variable, raised before anything is sent.
    """
    env: Mapping[str, str] = os.environ
    if not sandbox:
        missing = missing_credentials([account], env)
        if missing:
            raise UsageError("; ".join(missing))
    async with AsyncExitStack() as stack:
        base_urls: tuple[str, ...] = ()
        if sandbox:
            from runner.rehearsal import rehearsal  # the emulators: imported only to rehearse

            rehearsed = await stack.enter_async_context(rehearsal([account]))
            env, base_urls = rehearsed.environ, rehearsed.base_urls[account.name]
        for variable in account.credentials.values():
            redactor.add(env.get(variable, ""))
        store = None
        if store_dir is not None and (create_store or (store_dir / "state.db").is_file()):
            store = stack.enter_context(Store.open(store_dir))
        # paced like a run: a command right after one waits for its window, and the next run
        # counts the command's requests (a rehearsal's sandbox is a fresh account: no history)
        pacing = Pacing(environ=os.environ, keep_history=not sandbox)
        stack.callback(pacing.close)
        context = ProviderContext(
            account=account,
            limiter=pacing.limiter(account, base_urls, env),
            stats=AccountStats(),
            events=Events(redactor=redactor),
            environ=env,
            base_urls=base_urls,
            store=store,
        )
        provider = create_provider(context)
        stack.push_async_callback(_shielded_close, provider)
        yield provider


async def _shielded_close(provider: Provider) -> None:
    with anyio.CancelScope(shield=True):
        await provider.aclose()


@contextmanager
def redacted(redactor: Redactor) -> Iterator[None]:
    """Errors leave with every known secret replaced (adapters redact too; this is a backstop)."""
    try:
        yield
    except RunnerError as exc:
        exc.args = tuple(redactor(a) if isinstance(a, str) else a for a in exc.args)
        raise


def emit(
    document: Mapping[str, object], lines: list[str], *, as_json: bool, redactor: Redactor
) -> None:
    if as_json:
        json.dump(redactor.value(document), sys.stdout, indent=2, ensure_ascii=False, default=str)
        print()
    else:
        for line in lines:
            print(redactor(line))


# -- voices and refs ----------------------------------------------------------------------------


def _handler(action: Action) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        manifest = load_manifest(args.manifest, registry_of(args))
        account = choose_account(manifest, args.provider, action.operation)
        action.check(args)  # e.g. the audio files exist: before anything is sent
        store_dir = None
        if action.writes_state:
            options = RunOptions(state_dir=args.state, sandbox=args.sandbox)
            store_dir = state_dir_for(manifest, options)
        redactor = Redactor()

        async def go() -> tuple[dict[str, object], list[str]]:
            async with connect(
                account,
                sandbox=args.sandbox,
                redactor=redactor,
                store_dir=store_dir,
                create_store=account.kind in action.creates_state,
            ) as provider:
                return await action.perform(provider, args)

        with redacted(redactor):
            document, lines = anyio.run(go)
        head = {"account": account.name, "kind": account.kind, "sandbox": args.sandbox}
        where = f"{account.name} ({account.kind}{', sandbox' if args.sandbox else ''})"
        lines = [f"{where}: {lines[0]}", *lines[1:]]
        emit({**head, **document}, lines, as_json=args.json, redactor=redactor)
        return 0

    return handle


# -- quota --------------------------------------------------------------------------------------


@dataclass
class _Answer:
    account: Account
    quota: Quota | None = None
    unsupported: str = ""
    error: str = ""
    code: int = 0

    def document(self) -> dict[str, object]:
        out: dict[str, object] = {"account": self.account.name, "kind": self.account.kind}
        if self.quota is not None:
            q = self.quota
            out |= {
                "remaining": q.remaining,
                "used": q.used,
                "unit": q.unit,
                "details": dict(q.details),
            }
        if self.unsupported:
            out["unsupported"] = self.unsupported
        if self.error:
            out["error"] = self.error
        return out

    def line(self) -> str:
        head = f"{self.account.name} ({self.account.kind}): "
        if self.quota is not None:
            q = self.quota
            left = "unknown" if q.remaining is None else _amount(q.remaining)
            used = "" if q.used is None else f", {_amount(q.used)} used"
            return f"{head}{left} {q.unit} left{used}"
        if self.unsupported:
            return f"{head}not reported — {self.unsupported}"
        return f"{head}error — {self.error}"


def _amount(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.4f}".rstrip("0")


async def _ask(account: Account, sandbox: bool, redactor: Redactor, named: bool) -> _Answer:
    answer = _Answer(account)
    try:
        async with connect(account, sandbox=sandbox, redactor=redactor) as provider:
            answer.quota = await provider.quota()
    except Unsupported as exc:
        answer.unsupported, answer.code = redactor(str(exc)), 2 if named else 0
    except UsageError as exc:  # a missing credential
        answer.error, answer.code = redactor(str(exc)), 2
    except RunnerError as exc:
        answer.error, answer.code = redactor(str(exc)), 1
    return answer


def cmd_quota(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, registry_of(args))
    if args.account is not None:
        accounts = [choose_account(manifest, args.account, "quota")]
    else:
        accounts = sorted(
            (a for a in manifest.accounts.values() if a.kind != "local"), key=lambda a: a.name
        )
    redactor = Redactor()

    async def ask_all() -> list[_Answer]:
        named = args.account is not None
        return [
            await _ask(a, args.sandbox, redactor, named)
            if supports(a, "quota")
            else _Answer(a, unsupported=f"the {a.kind} API does not report it")
            for a in accounts
        ]

    answers = anyio.run(ask_all)
    lines = [a.line() for a in answers] or [
        f"{manifest.path}: only the embedded engine, which costs nothing"
    ]
    document = {
        "manifest": str(manifest.path),
        "sandbox": args.sandbox,
        "accounts": [a.document() for a in answers],
    }
    emit(document, lines, as_json=args.json, redactor=redactor)
    codes = {a.code for a in answers}
    return 2 if 2 in codes else 1 if 1 in codes else 0

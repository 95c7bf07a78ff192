"""The malformed-manifest corpus: every file in tests/manifests/invalid/ is a mistake a user
would make. Each states what the runner must report, in comments at its top:

    # expect: LINE:COLUMN substring     a problem at that place whose message contains substring
    # problems: N                       exactly N problems in all

`{dir}` in a substring stands for the absolute folder the manifest was copied to. For each file,
`validate` and `run` must both exit 2, report every expected problem as
`path:line:column: message`, and leave the folder exactly as it was: nothing sent, nothing written
(invariant 6).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.cli import main

CORPUS = Path(__file__).resolve().parent / "manifests" / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))

_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+)$")
_COUNT = re.compile(r"^# problems: (\d+)$")
_SUMMARY = re.compile(r"^(\d+) problems? found; nothing was sent or written$", re.MULTILINE)


@dataclass(frozen=True)
class Expected:
    line: int
    column: int
    substring: str


def expectations(path: Path) -> tuple[list[Expected], int | None]:
    expected: list[Expected] = []
    count: int | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _EXPECT.match(line):
            expected.append(Expected(int(match[1]), int(match[2]), match[3].strip()))
        elif match := _COUNT.match(line):
            count = int(match[1])
    return expected, count


def test_corpus_is_large_and_every_file_states_its_expectations() -> None:
    assert len(FILES) >= 36
    names = [p.name for p in FILES]
    assert all(re.fullmatch(r"\d\d-[a-z0-9-]+\.yaml", n) for n in names), names
    assert len({n[:2] for n in names}) == len(names), "two files share a number"
    for path in FILES:
        expected, count = expectations(path)
        assert expected, f"{path.name} has no `# expect:` line"
        assert count is not None, f"{path.name} has no `# problems:` line"
        assert count >= len({(e.line, e.column) for e in expected}), path.name


@pytest.fixture(scope="session")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus's helper files, plus a short valid WAV (generated, not committed)."""
    root = tmp_path_factory.mktemp("helpers") / "files"
    shutil.copytree(CORPUS / "files", root)
    with wave.open(str(root / "ref.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\x00\x00" * 16_000)  # one second of silence
    return root


@pytest.fixture
def workspace(tmp_path: Path, helpers: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder with the helper files; HOME and the working directory point inside
    tmp_path, so that anything the runner might write lands where `snapshot` sees it."""
    case = tmp_path / "case"
    shutil.copytree(helpers, case / "files")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(case)
    return case.resolve()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root (the tmp dir), with size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def problem_lines(stderr: str, manifest: Path) -> list[str]:
    prefix = f"{manifest}:"
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def check_report(stderr: str, manifest: Path, directory: Path) -> list[str]:
    """Asserts the expectations written in the manifest; returns its problem lines."""
    expected, count = expectations(manifest)
    lines = problem_lines(stderr, manifest)
    summary = _SUMMARY.findall(stderr)
    assert len(summary) == 1, stderr
    assert int(summary[0]) == len(lines), stderr
    for e in expected:
        at = f"{manifest}:{e.line}:{e.column}: "
        substring = e.substring.replace("{dir}", str(directory))
        hits = [line for line in lines if line.startswith(at) and substring in line]
        assert hits, f"no problem at {e.line}:{e.column} containing {substring!r} in:\n{stderr}"
    if count is not None:
        assert len(lines) == count, stderr
    assert all(_located(line, manifest) for line in lines), stderr
    return lines


def _located(line: str, manifest: Path) -> tuple[int, int]:
    match = re.match(rf"{re.escape(str(manifest))}:(\d+):(\d+): \S", line)
    assert match, f"problem without line:column: {line}"
    return int(match[1]), int(match[2])


@pytest.mark.parametrize("source", FILES, ids=[p.stem for p in FILES])
def test_malformed_manifest(
    source: Path, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = workspace / source.name
    shutil.copyfile(source, manifest)
    before = snapshot(tmp_path)

    assert main(["validate", str(manifest)]) == 2
    validate = capsys.readouterr()
    assert validate.out == ""
    reported = check_report(validate.err, manifest, workspace)

    assert main(["run", str(manifest)]) == 2
    run = capsys.readouterr()
    assert run.out == ""
    assert check_report(run.err, manifest, workspace) == reported  # the same report
    assert run.err == validate.err  # and nothing else: no progress, no event was logged

    assert snapshot(tmp_path) == before, "a bad manifest created or changed files"


def test_secrets_are_not_repeated(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pasted credential of 32 and 54 is pointed at, never echoed (invariant 7)."""
    for name, secret in (
        ("32-literal-secret.yaml", "sk-tts-4f1c2a9e8b7d6c5f"),
        ("54-secret-in-token-key.yaml", "7c1f0e9a2b4d"),
        ("33-sign-env-not-a-name.yaml", "3f9a-77c1-b2e4-a8d0"),
    ):
        manifest = workspace / name
        shutil.copyfile(CORPUS / name, manifest)
        assert secret in manifest.read_text(encoding="utf-8")
        assert main(["run", str(manifest)]) == 2
        captured = capsys.readouterr()
        assert secret not in captured.err + captured.out


def test_all_sections_reported_at_once_sorted_by_line(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = workspace / "45-many-errors.yaml"
    shutil.copyfile(CORPUS / manifest.name, manifest)
    assert main(["validate", str(manifest)]) == 2
    lines = problem_lines(capsys.readouterr().err, manifest)
    places = [_located(line, manifest) for line in lines]
    assert places == sorted(places)
    assert len(set(places)) == len(places) == 10  # one problem per mistake, none twice
    # one from each section of the manifest
    source = manifest.read_text(encoding="utf-8").splitlines()
    sections = set()
    for line_no, _ in places:
        above = [s for s in source[:line_no] if re.match(r"^[a-z]+:", s)]
        sections.add(above[-1].split(":")[0])
    assert sections == {"version", "output", "providers", "voices", "defaults", "texts"}


def test_several_manifests_report_together(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`validate A B` reports the problems of both, not only the first file's."""
    first, second = workspace / "07-wrong-version.yaml", workspace / "17-duplicate-ids.yaml"
    for manifest in (first, second):
        shutil.copyfile(CORPUS / manifest.name, manifest)
    before = snapshot(tmp_path)
    assert main(["run", str(first), str(second)]) == 2
    err = capsys.readouterr().err
    assert len(problem_lines(err, first)) == 1
    assert len(problem_lines(err, second)) == 1
    assert "2 problems found" in err
    assert snapshot(tmp_path) == before


def test_real_entry_point(workspace: Path, tmp_path: Path) -> None:
    """`python -m runner run` behaves like the in-process call: exit 2, the report, no files."""
    manifest = workspace / "45-many-errors.yaml"
    shutil.copyfile(CORPUS / manifest.name, manifest)
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(manifest)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(check_report(proc.stderr, manifest, workspace)) == 10
    assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


def test_snapshot_sees_what_a_run_writes(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The control for the "nothing written" checks: a valid manifest does create state and
    output where `snapshot` looks."""
    manifest = workspace / "ok.yaml"
    manifest.write_text("texts: [Hi]\n", encoding="utf-8")
    before = snapshot(tmp_path)
    assert main(["run", str(manifest)]) == 0
    capsys.readouterr()
    created = set(snapshot(tmp_path)) - set(before)
    assert "case/.tts-runner" in created
    assert "case/out" in created

"""The run report: report.json and report.html after real runs on the embedded engine, and the
page as a real browser (headless Chromium) renders it."""

from __future__ import annotations

import functools
import json
import re
import shutil
import struct
import subprocess
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgpack
import numpy as np
import pytest

from runner.events import Events
from runner.manifest import Manifest, load_manifests
from runner.plan import expand
from runner.plans import Limits
from runner.report import ReportFiles, write_report
from runner.report.html import render_cost
from runner.report.plot import clock
from runner.report.timeline import MAX_BARS, timeline
from runner.report.write import LEVELS_NAME
from runner.run import RunOptions, RunResult, run_manifest, state_dir_for
from runner.store import SegmentState, Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Twelve short sentences in two chapters, one segment each (max_chars 30), paced at 3 per second.
PACED = """\
name: paced-book
providers:
  slow: {kind: local, limits: {requests: 3, per_seconds: 1, max_chars: 30}}
voices:
  narrator: {provider: slow, language: en, rate: 170}
defaults: {voice: narrator}
texts:
  - id: ch01
    title: The Keeper
    text: "The keeper climbs the stair. The lamp is lit at dusk. Ships pass in the night.
      The wind is cold and sharp. Gulls cry over the rocks. Morning comes slowly here."
  - id: ch02
    title: The Traveler
    text: "A traveler counts the miles. The road bends by the river. Rain falls on the
      old bridge. Lanterns glow in the town. Supper waits by the fire. Sleep comes at last."
"""


@dataclass
class Ran:
    manifest: Manifest
    result: RunResult
    files: ReportFiles

    @property
    def document(self) -> dict[str, object]:
        return json.loads(self.files.json.read_text())


def _run(directory: Path, source: str, options: RunOptions | None = None) -> Ran:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "book.yaml").write_text(source)
    (manifest,) = load_manifests([directory / "book.yaml"])
    options = options or RunOptions()
    result = anyio.run(run_manifest, manifest, options, Events())
    assert result.exit_code == 0, result
    return Ran(manifest, result, _report(manifest, result, options=options))


def _report(
    manifest: Manifest,
    result: RunResult,
    run_id: int | None = None,
    options: RunOptions | None = None,
) -> ReportFiles:
    options = options or RunOptions()
    with Store.open(state_dir_for(manifest, options)) as store:
        write = functools.partial(
            write_report, manifest, store, result, run_id=run_id, environ=options.environ
        )
        return anyio.run(write)


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    with pytest.MonkeyPatch.context() as env:  # the account's pacing history: not the user's
        env.setenv("TTS_RUNNER_HOME", str(tmp_path_factory.mktemp("home")))
        return _run(tmp_path_factory.mktemp("paced"), PACED)


def _plain(sentences: int) -> str:
    text = " ".join(f"Sentence number {i} is here." for i in range(sentences))
    return (
        "providers:\n  engine: {kind: local, limits: {max_chars: 30}}\n"
        "voices:\n  v: {provider: engine, language: en}\ndefaults: {voice: v}\n"
        f'texts:\n  - {{id: only, title: Only, text: "{text}"}}\n'
    )


# -- the document ---------------------------------------------------------------------------------


def test_report_files_sit_beside_the_chapters_and_describe_them(paced: Ran) -> None:
    out = paced.manifest.output.dir
    assert paced.files.json.parent == paced.files.html.parent == out
    document = paced.document
    totals = document["totals"]
    assert isinstance(totals, dict)
    unique = expand(paced.manifest).unique_segments()
    assert totals["segments"] == totals["done"] == len(unique) == 12
    assert totals["chars"] == sum(s.chars for s in unique.values())
    index = json.loads((out / "index.json").read_text())
    chapters = document["chapters"]
    assert isinstance(chapters, list)
    assert [(c["id"], c["duration"]) for c in chapters] == [
        (c["id"], c["duration"]) for c in index["chapters"]
    ]
    assert totals["duration"] == pytest.approx(sum(c["duration"] for c in index["chapters"]))
    for chapter, entry in zip(chapters, index["chapters"], strict=True):
        assert (out / chapter["href"]).is_file()  # relative to the report: works when copied
        # measured on the delivered file, it agrees with what assembly aimed for
        assert chapter["loudness_lufs"] == pytest.approx(entry["loudness"]["lufs"], abs=0.2)
    assert document["loudness"]["measured"] is True
    assert document["failed"] == document["deferred"] == document["warnings"] == []
    page = paced.files.html.read_text()
    assert page.count("<audio controls") == 2
    assert 'src="ch01.wav"' in page


def test_the_page_needs_no_network(paced: Ran) -> None:
    page = paced.files.html.read_text()
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"')]*", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace is a name, never fetched
    assert "<link" not in page
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert "@import" not in page
    assert "url(" not in page


def test_requests_are_plotted_against_the_plan(paced: Ran) -> None:
    accounts = paced.document["accounts"]
    assert isinstance(accounts, list)
    (slow,) = accounts
    assert (slow["name"], slow["kind"], slow["requests"], slow["synthesized"]) == (
        "slow",
        "local",
        12,
        12,
    )
    line = slow["timeline"]
    # Every start of the account's limiter is journaled in the state by the run.
    assert line["source"] == "events"
    assert (line["window"], line["limit"], line["starts"]) == (1.0, 3, 12)
    assert sum(line["bars"]) == 12
    assert max(line["bars"]) <= 3
    assert line["peak_in_window"] == 3  # the limiter kept the plan, and used it fully
    assert slow["cost"] == slow["cost_total"] == 0
    assert paced.document["notes"] == []  # nothing approximated
    assert 'class="limit"' in paced.files.html.read_text()


def test_request_events_in_the_state_are_preferred(tmp_path: Path) -> None:
    ran = _run(tmp_path, _plain(3))
    with Store.open(state_dir_for(ran.manifest, RunOptions())) as store:
        run_id = store.start_run("replayed")
        keys = list(expand(ran.manifest).unique_segments())
        for key in keys * 2:
            store.record_event(run_id, "start", account="engine", key=key)
        store.finish_run(run_id, 0, "")
    document = json.loads(_report(ran.manifest, ran.result, run_id).json.read_text())
    line = document["accounts"][0]["timeline"]
    assert (line["source"], line["starts"], line["limit"]) == ("events", 2 * len(keys), None)
    assert document["run"]["id"] == run_id
    assert document["notes"] == []


def test_timeline_counts_windows_and_the_busiest_sliding_window() -> None:
    limits = Limits(requests=3, per_seconds=1.0)
    line = timeline([0.0, 0.5, 0.99, 1.0, 1.5], limits, 0.0, 2.0, "events")
    assert line["bars"] == [3, 2]
    assert line["peak_in_window"] == 3  # any (t - 1 s, t]: never four
    assert timeline([0.0, 0.2, 0.4, 0.6, 1.1], limits, 0.0, 2.0, "events")["peak_in_window"] == 4
    long = timeline([float(t) for t in range(0, 3000, 3)], limits, 0.0, 3000.0, "events")
    assert len(long["bars"]) <= MAX_BARS
    assert long["group"] == 13
    assert max(long["bars"]) == 1
    free = timeline([0.0, 30.0], Limits(), 0.0, 60.0, "events")
    assert (free["limit"], free["window"]) == (None, 2.0)


# -- suspicious segments, failures and secrets ----------------------------------------------------


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def test_silent_and_slow_segments_are_flagged(tmp_path: Path) -> None:
    from runner.audio import decode

    ran = _run(tmp_path, _plain(6))
    with Store.open(state_dir_for(ran.manifest, RunOptions())) as store:
        rows = store.in_state(SegmentState.DONE)
        assert len(rows) == 6
        silent, slow = rows[1], rows[4]
        assert silent.path
        assert slow.path
        assert silent.sample_rate
        # A provider answered with near silence of the right length ...
        quiet = np.full(round((silent.duration or 0) * silent.sample_rate), 1e-4, np.float32)
        _write_wav(store.directory / silent.path, quiet, silent.sample_rate)
        # ... and another with its speech followed by a long silence: four times too long.
        speech, rate = decode((store.directory / slow.path).read_bytes(), "wav")
        padded = np.concatenate([speech, np.zeros(3 * len(speech), np.float32)])
        _write_wav(store.directory / slow.path, padded, rate)
        store.mark_done(
            slow.key,
            path=slow.path,
            sha256="padded",
            duration=len(padded) / rate,
            sample_rate=rate,
            cost=None,
        )
    document = json.loads(_report(ran.manifest, ran.result).json.read_text())
    found = {s["key"]: s for s in document["suspicious"]}
    assert set(found) == {silent.key, slow.key}
    (problem,) = found[silent.key]["problems"]
    assert problem.startswith("near-silent: RMS -8")
    assert -82 < found[silent.key]["rms_dbfs"] < -79
    assert 0.5 < found[silent.key]["ratio"] < 2  # its pace is fine
    (problem,) = found[slow.key]["problems"]
    assert problem.startswith("slow: ")
    assert found[slow.key]["ratio"] > 3
    assert found[slow.key]["rms_dbfs"] > -50


def test_levels_are_measured_when_cached_and_the_report_takes_them(tmp_path: Path) -> None:
    from runner.audio import decode, rms_dbfs
    from runner.cache import Level, Levels, level_key

    ran = _run(tmp_path, _plain(3))
    with Store.open(state_dir_for(ran.manifest, RunOptions())) as store:
        rows = store.in_state(SegmentState.DONE)
        directory = store.directory
    assert len(rows) == 3
    remembered = msgpack.unpackb(
        (directory / "levels" / LEVELS_NAME).read_bytes(), strict_map_key=False
    )["levels"]
    keys = []
    for row in rows:
        assert row.path
        assert row.sha256
        file = directory / row.path
        key = level_key(row.sha256, file.stat().st_size, file.stat().st_mtime_ns)
        samples, _ = decode(file.read_bytes(), "wav")
        assert remembered[key] == pytest.approx(rms_dbfs(samples), abs=1e-9)
        assert -40 < remembered[key] < 0  # speech
        keys.append(key)
    assert sorted(remembered) == sorted(keys)
    assert ran.document["suspicious"] == []
    # What a run measured as it cached is what its report goes by: were a file measured
    # at -80 dBFS when it arrived, the report says so without decoding it once more.
    ran.result.levels = Levels()
    ran.result.levels.add(Level(keys[1], -80.0))
    document = json.loads(_report(ran.manifest, ran.result).json.read_text())
    (found,) = document["suspicious"]
    assert found["key"] == rows[1].key
    assert found["problems"] == ["near-silent: RMS -80.0 dBFS"]


def test_costs_failures_and_no_secrets_in_a_rehearsal(tmp_path: Path) -> None:
    secret = "sk-report-test-0123456789"
    paid = (
        "  paid: {kind: ttsai, plan: pro, api_key_env: REPORT_TEST_KEY}\n",
        "  bella: {provider: paid, model: kokoro, voice: af_bella}\n",
        '  - {id: paid, voice: bella, text: "Paid for by the sentence. And by the letter."}\n',
    )
    source = _plain(3).replace("providers:\n", "providers:\n" + paid[0])
    source = source.replace("voices:\n", "voices:\n" + paid[1]) + paid[2]
    ran = _run(tmp_path, source, RunOptions(sandbox=True))  # the sandbox answers for `paid`
    key = next(iter(expand(ran.manifest).unique_segments()))
    with Store.open(state_dir_for(ran.manifest, RunOptions(sandbox=True))) as store:
        # A provider's error message that echoes the key back, as some do.
        store.mark_failed(key, f"401 from the server: key {secret} is not valid")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REPORT_TEST_KEY", secret)
        files = _report(ran.manifest, ran.result, options=RunOptions(sandbox=True))
    for path in (files.json, files.html):
        assert secret not in path.read_text()
    options = RunOptions(sandbox=True, environ={"REPORT_TEST_KEY": secret})
    files = _report(ran.manifest, ran.result, options=options)  # credentials from elsewhere
    document = json.loads(files.json.read_text())
    accounts = {a["name"]: a for a in document["accounts"]}
    assert accounts["paid"]["cost_unit"] == "credits"
    assert accounts["paid"]["cost"] == accounts["paid"]["cost_total"] > 0
    assert document["totals"]["cost_run"] == {"": 0, "credits": accounts["paid"]["cost"]}
    (failed,) = document["failed"]
    assert (failed["key"], failed["chapter"], failed["account"]) == (key, "only", "engine")
    assert failed["reason"] == "401 from the server: key *** is not valid"
    chapters = {c["id"]: c for c in document["chapters"]}
    assert (chapters["only"]["complete"], chapters["only"]["href"]) == (False, None)
    assert chapters["only"]["done"] == 2
    assert chapters["paid"]["complete"]
    page = files.html.read_text()
    for text in (files.json.read_text(), page):
        assert secret not in text
        assert "REPORT_TEST_KEY" not in text  # not even the variable's name
    assert "key *** is not valid" in page
    assert render_cost(document["totals"]["cost_run"]) in page


# -- in a real browser ----------------------------------------------------------------------------


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,1600",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) to an array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    assert color in (2, 6), color
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    out = np.zeros((height, stride), np.uint8)
    prior = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        row = np.frombuffer(line, np.uint8).astype(np.int32)
        if kind == 1:  # Sub: a running sum along the row, per channel
            row = np.cumsum(row.reshape(-1, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            row = (row + prior) % 256
        elif kind in (3, 4):  # Average, Paeth: each byte depends on the one just rebuilt
            row = np.array(_unfilter_serial(kind, line, prior.tolist(), bpp), np.int32)
        prior = row
        out[y] = row
    return out.reshape(height, width, bpp)


def _unfilter_serial(kind: int, line: bytes, up: list[int], bpp: int) -> list[int]:
    row = list(line)
    for i in range(len(row)):
        a = row[i - bpp] if i >= bpp else 0
        b, c = up[i], up[i - bpp] if i >= bpp else 0
        if kind == 3:
            row[i] = (row[i] + (a + b) // 2) & 255
            continue
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        guess = a if pa <= pb and pa <= pc else b if pb <= pc else c
        row[i] = (row[i] + guess) & 255
    return row


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `apt-get install chromium`")
def test_the_page_renders_in_headless_chromium(paced: Ran, tmp_path: Path) -> None:
    url = paced.files.html.as_uri()
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", url, profile=tmp_path / "profile-shot")
    pixels = _png_pixels(shot.read_bytes())[:, :, :3]
    assert pixels.shape == (1600, 1200, 3)
    gray = pixels.mean(axis=2)
    assert gray.std() > 10, "the screenshot is blank"
    assert (gray < 100).mean() > 0.005, "no dark text or bars on the page"
    colours = {tuple(p) for p in pixels[::8, ::8].reshape(-1, 3).tolist()}
    assert len(colours) > 20
    assert tuple(pixels[4, 4]) == (0xF6, 0xF7, 0xF9)  # the page's own background: CSS applied
    bar = np.all(pixels == (0x2F, 0x6F, 0xDB), axis=2)  # the plot's bars: inline SVG drawn
    assert bar.sum() > 2000

    dom = _chromium("--dump-dom", url, profile=tmp_path / "profile-dom").stdout
    totals = paced.document["totals"]
    assert isinstance(totals, dict)

    def metric(name: str) -> str:
        found = re.search(rf'data-metric="{name}"[^>]*>([^<]*)<', dom)
        assert found is not None, name
        return found.group(1)

    assert metric("segments") == "12"
    assert metric("duration") == clock(totals["duration"])
    assert metric("cost") == render_cost(totals["cost_run"]) == "0"
    assert metric("requests") == "12"
    assert metric("peak") == "3"
    assert dom.count("<audio") == 2
    assert "The Keeper" in dom
    assert "The Traveler" in dom
    assert dom.count('class="bar"') >= 4  # the request plot was drawn

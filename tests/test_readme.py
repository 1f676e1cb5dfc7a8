"""The manual cannot drift: README.md's shell blocks, followed in order, run as written, and its
Python block runs against the API it documents.

The shell blocks run in a temporary project folder (a copy of ``experiments/configs``, the real
speech of ``../shared/data`` linked beside it when present), one ``bash -e`` per block, with
``kws-proto`` and ``kws-prep`` being this checkout's modules (``. .venv/bin/activate`` stands for
that).  A line is skipped only by a rule of :data:`SKIP` (each names why, and each must still
match a line, so no rule outlives its reason), or, when ``../shared/data`` is absent, with every
line of a block that names it (:data:`REAL_SPEECH`); each skipped line is printed with its reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA

README = REPO / "README.md"

#: (pattern of a command line, why a test machine does not run it)
SKIP = [
    (r"^make\b", "a make target: the test suite itself, the demo, the pretrained build (minutes)"),
    (r"--mic\b", "needs a microphone"),
    (r"--flite-speakers", "needs the system's flite"),
    (r"^kws-prep speech-commands\b", "needs a Speech Commands archive (or the network)"),
    (r"^kws-prep (synth data/synth |merge )", "the full built-in corpus (10,000 clips) and the "
                                                "merge built on it: left to `make demo`"),
    (r"^kws-proto compare\b", "trains the demo's two encoders (minutes)"),
]
#: Lines that need the real speech of ../shared/data (or what is built from it).
REAL_SPEECH = re.compile(r"\.\./shared/data|\$P\b|\bP=|data/(fsdd|picovoice)\b")


def blocks(text: str, language: str = "") -> list[str]:
    """The ```-fenced blocks of ``text`` with the given info string ("" for shell), in order."""
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
            if m.group(1) == language]


def commands(block: str) -> list[str]:
    """The command lines of a shell block, continuation lines joined."""
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def plan(text: str, real_speech: bool):
    """``[(block lines to run, [(skipped line, reason)])]`` for every shell block, and the rules
    that matched."""
    used, out = set(), []
    for block in blocks(text):
        run, skipped = [], []
        lines = [line for line in commands(block) if line != ". .venv/bin/activate"]  # the prelude's
        needs_speech = not real_speech and any(REAL_SPEECH.search(line) for line in lines)
        for line in lines:
            rule = next((i for i, (pat, _) in enumerate(SKIP) if re.search(pat, line)), None)
            if rule is not None:
                used.add(rule)
                skipped.append((line, SKIP[rule][1]))
            elif needs_speech:  # the whole block: its later lines build on the real speech
                skipped.append((line, f"its block needs the real speech, absent: {SHARED_DATA}"))
            else:
                run.append(line)
        out.append((run, skipped))
    return out, used


def _prelude() -> str:
    py = sys.executable
    return (f'export PYTHONPATH="{REPO}"\n'
            f'kws-proto() {{ "{py}" -m kws_proto.cli "$@"; }}\n'
            f'kws-prep() {{ "{py}" -m data_prep.cli "$@"; }}\n'
            f'python() {{ "{py}" "$@"; }}\n')  # the environment's, as after activating it


def test_every_skip_rule_still_matches_a_line_of_the_manual():
    _, used = plan(README.read_text(encoding="utf-8"), real_speech=True)
    assert sorted(used) == list(range(len(SKIP)))


@pytest.mark.slow
@pytest.mark.first  # about a third of the suite's wall time: a late start leaves one worker idle
def test_the_manuals_shell_blocks_run_in_order(tmp_path):
    real = SHARED_DATA.is_dir()
    project = tmp_path / "project"
    shutil.copytree(REPO / "experiments" / "configs", project / "experiments" / "configs")
    if real:
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(SHARED_DATA.resolve())
    before = _outputs_in_checkout()
    steps, _ = plan(README.read_text(encoding="utf-8"), real)
    for run, skipped in steps:
        for line, why in skipped:
            print(f"skipped ({why}): {line}")
        if not run:
            continue
        script = _prelude() + "set -e\n" + "\n".join(run) + "\n"
        done = subprocess.run(["bash", "-c", script], cwd=project, capture_output=True, text=True,
                              timeout=1800)
        assert done.returncode == 0, f"{run}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        print(done.stdout)
    if real:
        assert (project / "quick.bank.npz").is_file() and (project / "my.bank.npz").is_file()
    assert (project / "runs" / "smoke" / "result.json").is_file()
    assert _outputs_in_checkout() == before  # nothing written into the checkout


#: What the manual's commands write, relative to where they run.
OUTPUTS = ("quick.bank.npz", "my.bank.npz", "exported", "runs/smoke", "runs/smoke-mirrored",
           "runs/smoke-2w", "data/fsdd",
           "data/picovoice", "data/synth-smoke")


def _outputs_in_checkout() -> dict:
    """The manual's outputs that exist in this checkout, with their modification times."""
    return {name: (REPO / name).stat().st_mtime_ns for name in OUTPUTS if (REPO / name).exists()}


def _bullet(text: str, start: str) -> str:
    """The README bullet (``- ...`` with its continuation lines) that starts with ``start``."""
    m = re.search(rf"^- {re.escape(start)}.*?(?=^- |^\n|^Errors)", text, re.M | re.S)
    assert m, start
    return " ".join(m.group(0).split())


def test_the_manuals_python_block_runs_and_its_api_list_matches_the_code(tmp_path, monkeypatch, capsys):
    import inspect

    import soundfile as sf

    from kws_proto.audio.loading import read_audio
    from kws_proto.model.runs import RunDir
    from kws_proto.spot.detect import Detection, Event, detect_audio
    from kws_proto.spot.spotter import KeywordSpotter

    text = README.read_text(encoding="utf-8")
    data = REPO / "tests" / "data"
    clips = [read_audio(p, 16000) for p in sorted((data / "fsdd").glob("*.wav"))
             + sorted((data / "picovoice").rglob("*.flac"))]  # 6 real clips
    for i, y in enumerate(clips[:5], 1):
        sf.write(tmp_path / f"a{i}.flac", y, 16000)
    sf.write(tmp_path / "query.wav", clips[5], 16000)
    sf.write(tmp_path / "long.flac", __import__("numpy").concatenate(clips), 16000)
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks(text, "python")[0], str(README), "exec"), {})
    assert "query.wav" in capsys.readouterr().out and (tmp_path / "api.bank.npz").is_file()

    # detect(): its documented defaults, result and event fields
    doc = _bullet(text, "`.detect(")
    defaults = {**{k: p.default for k, p in inspect.signature(detect_audio).parameters.items()
                   if p.default is not inspect.Parameter.empty},
                "hop": inspect.signature(KeywordSpotter.detect).parameters["hop"].default}
    for name, value in re.findall(r"(\w+)=(-?[\d.]+)", doc.split(")")[0]):
        assert defaults[name] == float(value), name
    named = set(re.findall(r"`\.?(\w+)`", doc))
    fields = {f for cls in (Detection, Event) for f in dir(cls) if not f.startswith("_")}
    fields |= set(inspect.signature(Event).parameters) | set(inspect.signature(Detection).parameters)
    assert named - {"audio", "Detection", "Event"} <= fields, named - fields
    # RunDir: a str or a Path, and the files it names
    assert RunDir("runs/smoke") == RunDir(Path("runs/smoke"))
    doc = _bullet(text, "`RunDir(path)`")
    for name in set(re.findall(r"`(\w+)(?:\(\))?`", doc)) - {"Path"}:
        assert hasattr(RunDir("runs/smoke"), name), name

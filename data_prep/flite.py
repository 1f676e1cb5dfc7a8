"""A second offline synthesiser for the built-in corpus: CMU Flite (the system's ``flite``).

Flite's voices are built from recordings of real speakers (``kal16`` US male diphones; ``awb``
Scottish male, ``rms`` US male and ``slt`` US female statistical-parametric "clustergen" voices),
so they differ from eSpeak NG's formant synthesis in how a voice sounds, not only in pitch and
speed.  It is a Debian/Ubuntu package (``apt-get install flite``), not a Python wheel, so the
corpus uses it only when asked (``SynthConfig.flite_speakers``) and says how to install it when it
is missing.  Flite is deterministic: the same text and voice give the same samples.

A Flite speaker is voice × mean pitch × duration stretch (:class:`FliteVoice`); ``rms`` ignores
the pitch setting, so it varies in speed only.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace

import numpy as np
import soundfile as sf

from kws_proto.errors import ConfigError, KwsError

#: Flite's built-in 16 kHz voices and the mean pitches (Hz) a speaker of each is drawn from
#: (around the voice's own: kal16 ~100 Hz, awb ~150, slt ~180; ``None``: the voice's own).
VOICE_PITCHES: dict[str, tuple[int | None, ...]] = {
    "kal16": (85, 100, 120, 140),
    "awb": (110, 130, 150, 175),
    "slt": (150, 175, 200, 230),
    "rms": (None,),
}
#: Duration stretches (> 1 is slower) a speaker is drawn from.
STRETCHES = (0.8, 0.9, 1.0, 1.1, 1.25)
STRETCH_MIN = 0.4  # fastest a too-long word is re-synthesised at


@dataclass(frozen=True)
class FliteVoice:
    """One Flite voice setting: a "speaker" of the synthetic corpus.

    Parameters
    ----------
    voice : str
        A key of :data:`VOICE_PITCHES`.
    pitch : int or None
        Target mean pitch in Hz (Flite's ``int_f0_target_mean``); ``None`` keeps the voice's own.
    stretch : float
        Duration stretch (Flite's ``duration_stretch``), > 1 slower.
    """

    ENGINE = "flite"

    voice: str
    pitch: int | None = None
    stretch: float = 1.0

    def __post_init__(self) -> None:
        if self.voice not in VOICE_PITCHES:
            raise ConfigError(f"Flite voice {self.voice!r} must be one of {sorted(VOICE_PITCHES)}")
        if self.pitch is not None and not 50 <= self.pitch <= 400:
            raise ConfigError(f"Flite pitch={self.pitch} must be in [50, 400] Hz")
        if not STRETCH_MIN <= self.stretch <= 3.0:
            raise ConfigError(f"Flite stretch={self.stretch} must be in [{STRETCH_MIN}, 3]")

    @property
    def name(self) -> str:
        return f"flite:{self.voice}" + (f"@{self.pitch}Hz" if self.pitch else "") + f"x{self.stretch:g}"

    @property
    def speaker_key(self) -> str:
        """What the corpus hashes into the speaker's id."""
        return f"flite|{self.voice}|{self.pitch}|{self.stretch}"

    def faster(self, ratio: float) -> "FliteVoice | None":
        """This setting sped up by ``ratio`` (> 1) and a little more, or ``None`` at its fastest."""
        return faster_stretch(self, ratio)


def faster_stretch(setting, ratio: float):
    """A setting with a duration ``stretch`` (Flite's) sped up by ``ratio`` (> 1) and a
    little more, never below :data:`STRETCH_MIN`; ``None`` when it is there already."""
    if setting.stretch <= STRETCH_MIN:
        return None
    return replace(setting, stretch=max(STRETCH_MIN, round(setting.stretch / (ratio * 1.05), 3)))


def flite_settings() -> list[FliteVoice]:
    """Every voice setting, voice by voice (65 of them)."""
    return [FliteVoice(v, p, s) for v, pitches in VOICE_PITCHES.items()
            for p, s in itertools.product(pitches, STRETCHES)]


def draw_flite_speakers(n: int, seed: int) -> list[FliteVoice]:
    """``n`` distinct Flite settings, taking the voices in turn so each is used evenly.

    Raises
    ------
    ConfigError
        ``n`` negative or above the number of settings.
    """
    settings = flite_settings()
    if not 0 <= n <= len(settings):
        raise ConfigError(f"flite_speakers={n} must be in [0, {len(settings)}] (Flite's voice settings)")
    rng = np.random.default_rng([seed, 0xF117E])
    per_voice = [[s for s in settings if s.voice == v] for v in VOICE_PITCHES]
    queues = [[group[i] for i in rng.permutation(len(group))] for group in per_voice]
    order = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return order[:n]


class FliteCli:
    """Flite through the ``flite`` executable (WAV written to a temporary file)."""

    def __init__(self, exe: str) -> None:
        self._exe = exe
        self.sample_rate = 16000
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
        version = next((line.split("version:", 1)[1].split("(")[0].strip()
                        for line in out.splitlines() if "version:" in line), "version unknown")
        #: What built the clips, for report.json (e.g. "flite executable (flite-2.2-current Sep 2018)").
        self.backend = f"flite executable ({version})"

    def synthesize(self, text: str, voice: FliteVoice, seed: int | None = None) -> np.ndarray:
        """Speak ``text`` with ``voice``; int16 samples [shape=(n,)] at :attr:`sample_rate`.

        ``seed`` is ignored (Flite has no randomness).
        """
        cmd = [self._exe, "-voice", voice.voice, "--setf", f"duration_stretch={voice.stretch}"]
        if voice.pitch is not None:
            cmd += ["--setf", f"int_f0_target_mean={voice.pitch}"]
        fd, path = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        try:
            proc = subprocess.run(cmd + ["-t", text, "-o", path], capture_output=True, check=False)
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace").strip()
                raise KwsError(f"{self._exe} failed on {text!r} with {voice.name}: {err}")
            y, sr = sf.read(path, dtype="int16")
        finally:
            os.unlink(path)
        self.sample_rate = sr
        return y if y.ndim == 1 else y[:, 0]


def get_flite() -> FliteCli:
    """The system's Flite, or a :class:`KwsError` saying how to install it."""
    exe = shutil.which("flite")
    if not exe:
        raise KwsError("Flite voices need the `flite` executable: install it with "
                       "`apt-get install flite` (Debian/Ubuntu), or ask for no Flite speakers "
                       "(kws-prep synth --flite-speakers 0; data.synth_flite_speakers: 0 in a config)")
    return FliteCli(exe)

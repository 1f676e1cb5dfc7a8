"""A third offline synthesiser for the built-in corpus: the Festival Speech Synthesis System.

Festival's voices are Debian/Ubuntu packages, each built from one real speaker's recordings.  Two
speak English: ``ked_diphone`` (US male diphones, package ``festvox-kdlpc16k``; a speaker neither
eSpeak NG nor Flite has) and ``cmu_us_slt_arctic_hts`` (US female, HTS statistical-parametric).
The others speak their own language; given an English word they read it with their language's
letter-to-sound rules and phones, so they say it as a strongly accented speaker would — Italian,
Czech, Finnish, Catalan and Russian voices (:data:`VOICES`).  Like Flite, Festival is used only when
asked (``SynthConfig.festival_speakers``), says how to install what is missing, and is
deterministic: the same text and setting give the same samples.

A Festival speaker is voice × pitch factor × duration stretch (:class:`FestivalVoice`).  The pitch
factor scales the voice's intonation targets before waveform synthesis; the HTS and unit-selection
voices make their own pitch and ignore it, so they vary in speed only.  One Festival process says
all the words of a speaker (:meth:`FestivalCli.speak_all`): starting Festival and loading a voice
costs far more than a word.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.flite import STRETCH_MIN, STRETCHES, faster_stretch  # the same speeds as Flite's
from kws_proto.errors import ConfigError, KwsError


@dataclass(frozen=True)
class FestivalVoiceInfo:
    """What a Festival voice is: its Debian package, who speaks, and whether it takes a pitch."""

    package: str
    speaker: str
    pitch: bool


#: The Festival voices a corpus can use (every one a package of Debian's main archive).
VOICES: dict[str, FestivalVoiceInfo] = {
    "ked_diphone": FestivalVoiceInfo("festvox-kdlpc16k", "US English male, diphones", True),
    "cmu_us_slt_arctic_hts": FestivalVoiceInfo("festvox-us-slt-hts", "US English female, HTS", False),
    "pc_diphone": FestivalVoiceInfo("festvox-itapc16k", "Italian male, diphones", True),
    "lp_diphone": FestivalVoiceInfo("festvox-italp16k", "Italian female, diphones", True),
    "czech_dita": FestivalVoiceInfo("festvox-czech-dita", "Czech female, diphones", True),
    "czech_krb": FestivalVoiceInfo("festvox-czech-krb", "Czech boy, diphones", True),
    "czech_machac": FestivalVoiceInfo("festvox-czech-machac", "Czech male, diphones", True),
    "czech_ph": FestivalVoiceInfo("festvox-czech-ph", "Czech male, diphones", True),
    "suo_fi_lj_diphone": FestivalVoiceInfo("festvox-suopuhe-lj", "Finnish female, diphones", True),
    "hy_fi_mv_diphone": FestivalVoiceInfo("festvox-suopuhe-mv", "Finnish male, diphones", True),
    "upc_ca_ona_hts": FestivalVoiceInfo("festvox-ca-ona-hts", "Catalan female, HTS", False),
    "msu_ru_nsh_clunits": FestivalVoiceInfo("festvox-ru", "Russian male, unit selection", False),
}
#: The voices that speak English; the rest read English words with another language's rules.
ENGLISH = ("ked_diphone", "cmu_us_slt_arctic_hts")
#: Factors on the voice's own intonation targets a speaker is drawn from.
PITCH_FACTORS = (0.85, 1.0, 1.15, 1.3)
BATCH = 50  # words per Festival process

# Festival Scheme run once per speaker: select the voice, turn off the Czech voices' random choice
# of intonation (else a word's audio depends on the words said before it), append a hook that scales the pitch
# targets just before waveform synthesis (after the voice's own hooks), set the duration stretch,
# then synthesise and save every word.  `Utterance` does not evaluate its arguments, hence `eval`.
_SCRIPT = """
(define (kws_hooks h) (cond ((null h) nil) ((consp h) h) (t (list h))))
(define (kws_scale_f0 utt)
  (mapcar (lambda (tg) (item.set_feat tg "f0" (* kws_f0_factor (item.feat tg "f0"))))
          (utt.relation.items utt 'Target))
  utt)
(voice_{voice})
(if (symbol-bound? 'czech-randomize) (set! czech-randomize nil))
(set! kws_f0_factor {pitch})
(set! after_analysis_hooks (append (kws_hooks after_analysis_hooks) (list kws_scale_f0)))
(Parameter.set 'Duration_Stretch {stretch})
(mapcar (lambda (w f) (utt.save.wave (utt.synth (eval (list 'Utterance 'Text w))) f 'riff))
        (list {texts}) (list {files}))
"""


@dataclass(frozen=True)
class FestivalVoice:
    """One Festival voice setting: a "speaker" of the synthetic corpus.

    Parameters
    ----------
    voice : str
        A key of :data:`VOICES`.
    pitch : float
        Factor on the voice's pitch targets (1 = its own); voices without pitch control take 1.
    stretch : float
        Duration stretch (Festival's ``Duration_Stretch``), > 1 slower.
    """

    ENGINE = "festival"

    voice: str
    pitch: float = 1.0
    stretch: float = 1.0

    def __post_init__(self) -> None:
        if self.voice not in VOICES:
            raise ConfigError(f"Festival voice {self.voice!r} must be one of {sorted(VOICES)}")
        if not 0.5 <= self.pitch <= 2.0:
            raise ConfigError(f"Festival pitch factor={self.pitch} must be in [0.5, 2]")
        if self.pitch != 1.0 and not VOICES[self.voice].pitch:
            raise ConfigError(f"Festival voice {self.voice!r} makes its own pitch: its factor must be 1")
        if not STRETCH_MIN <= self.stretch <= 3.0:
            raise ConfigError(f"Festival stretch={self.stretch} must be in [{STRETCH_MIN}, 3]")

    @property
    def name(self) -> str:
        return f"festival:{self.voice}" + (f"@{self.pitch:g}" if self.pitch != 1.0 else "") + f"x{self.stretch:g}"

    @property
    def speaker_key(self) -> str:
        """What the corpus hashes into the speaker's id."""
        return f"festival|{self.voice}|{self.pitch:g}|{self.stretch:g}"

    def faster(self, ratio: float) -> "FestivalVoice | None":
        """This setting sped up by ``ratio`` (> 1) and a little more, or ``None`` at its fastest."""
        return faster_stretch(self, ratio)


def festival_settings(voices: tuple[str, ...] | None = None) -> list[FestivalVoice]:
    """Every setting of ``voices`` (default all of :data:`VOICES`), voice by voice.

    A voice with pitch control has ``len(PITCH_FACTORS) * len(STRETCHES)`` settings, one
    without ``len(STRETCHES)``.
    """
    voices = check_voices(voices)
    return [FestivalVoice(v, p, s) for v in voices
            for p, s in itertools.product(PITCH_FACTORS if VOICES[v].pitch else (1.0,), STRETCHES)]


def check_voices(voices: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``voices`` as a tuple (``None`` or empty: all of :data:`VOICES`), each one known, none twice."""
    if not voices:
        return tuple(VOICES)
    unknown = [v for v in voices if v not in VOICES]
    if unknown:
        raise ConfigError(f"Festival voice(s) {unknown} unknown: choose from {sorted(VOICES)}")
    if len(set(voices)) != len(voices):
        raise ConfigError(f"Festival voices {list(voices)} name a voice twice")
    return tuple(voices)


def draw_festival_speakers(n: int, seed: int, voices: tuple[str, ...] | None = None) -> list[FestivalVoice]:
    """``n`` distinct settings of ``voices``, taking the voices in turn so each is used evenly.

    Raises
    ------
    ConfigError
        ``n`` negative or above the number of settings of ``voices``, or an unknown voice.
    """
    voices = check_voices(voices)
    settings = festival_settings(voices)
    if not 0 <= n <= len(settings):
        raise ConfigError(f"festival_speakers={n} must be in [0, {len(settings)}] "
                          f"(the settings of Festival voices {list(voices)})")
    rng = np.random.default_rng([seed, 0xFE5717A1])
    per_voice = [[s for s in settings if s.voice == v] for v in voices]
    queues = [[group[i] for i in rng.permutation(len(group))] for group in per_voice]
    order = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    return order[:n]


def _scheme_strings(items: list[str]) -> str:
    """Scheme string literals (JSON's quoting of ``"`` and ``\\`` is Scheme's too)."""
    return " ".join(json.dumps(s) for s in items)


class FestivalCli:
    """Festival through its ``festival`` executable in batch mode (WAVs written to a temporary folder)."""

    def __init__(self, exe: str) -> None:
        self._exe = exe
        self.sample_rate = 16000
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
        found = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr)
        #: What built the clips, for report.json (e.g. "festival executable (2.5.0)").
        self.backend = f"festival executable ({found.group(1) if found else 'version unknown'})"

    def installed_voices(self) -> set[str]:
        """The voices Festival finds on this machine."""
        proc = subprocess.run([self._exe, "-b", "(print (voice.list))"], capture_output=True,
                              text=True, check=False)
        return set(re.findall(r"[\w-]+", proc.stdout))

    def _run(self, texts: list[str], voice: FestivalVoice) -> tuple[list[np.ndarray], str]:
        """One Festival process saying ``texts``: the samples of the leading texts it wrote and,
        when it stopped before the end, what it said."""
        with tempfile.TemporaryDirectory(prefix="kws_festival_") as tmp:
            files = [Path(tmp) / f"{i}.wav" for i in range(len(texts))]
            script = Path(tmp) / "say.scm"
            script.write_text(_SCRIPT.format(voice=voice.voice, pitch=voice.pitch, stretch=voice.stretch,
                                             texts=_scheme_strings(texts),
                                             files=_scheme_strings([str(f) for f in files])))
            proc = subprocess.run([self._exe, "-b", str(script)], capture_output=True, text=True, check=False)
            pcm = []
            for f in files:  # a file exists only once Festival has saved it whole
                if not f.is_file():
                    break
                y, self.sample_rate = sf.read(f, dtype="int16")
                pcm.append(y if y.ndim == 1 else y[:, 0])
        said = [line for line in (proc.stderr + proc.stdout).splitlines()
                if line.strip() and "closing a file left open" not in line]  # (our script)
        err = "" if len(pcm) == len(texts) else (" ".join(said)[-300:]
                                                  or f"exit status {proc.returncode}, no audio written")
        return pcm, err

    def speak_all(self, texts: list[str], voice: FestivalVoice) -> list[np.ndarray | str]:
        """Speak each of ``texts`` with ``voice``, :data:`BATCH` texts per Festival process.

        Festival's non-English voices occasionally crash a long-running process (heap corruption
        after some dozens of words); the text it stopped at gets a process of its own, and the
        rest a new one.  A text that fails alone too is given up.

        Returns
        -------
        pcm : list of (np.ndarray [shape=(n_i,)] or str), one per text: int16 samples at
            :attr:`sample_rate`, or why Festival could not say the text.
        """
        out: list[np.ndarray | str] = []
        while len(out) < len(texts):
            pcm, err = self._run(texts[len(out): len(out) + BATCH], voice)
            out += pcm
            if err and not pcm:  # stopped at its first text: that text alone
                alone, err = self._run([texts[len(out)]], voice)
                out += alone or [f"{self._exe} failed on {texts[len(out)]!r} with {voice.name}: {err}"]
        return out

    def synthesize(self, text: str, voice: FestivalVoice, seed: int | None = None) -> np.ndarray:
        """Speak ``text`` with ``voice``; int16 samples [shape=(n,)] at :attr:`sample_rate`.

        ``seed`` is ignored (Festival has no randomness).

        Raises
        ------
        KwsError
            Festival could not say it (the text, the setting and Festival's message are named).
        """
        (pcm,) = self.speak_all([text], voice)
        if isinstance(pcm, str):
            raise KwsError(pcm)
        return pcm


def get_festival(voices: tuple[str, ...] | None = None) -> FestivalCli:
    """The system's Festival, or a :class:`KwsError` saying how to install it.

    ``voices`` (empty: all of :data:`VOICES`) are checked to be installed, naming the packages of
    any that are not; ``None`` checks none (each synthesis worker, after the corpus build checked).
    """
    named = check_voices(voices) if voices is not None else None
    exe = shutil.which("festival")
    if not exe:
        packages = " ".join(VOICES[v].package for v in (named or VOICES))
        raise KwsError("Festival voices need the `festival` executable: install it with "
                       f"`apt-get install festival {packages}` (Debian/Ubuntu), or ask for no Festival "
                       "speakers (kws-prep synth --festival-speakers 0; data.synth_festival_speakers: 0)")
    cli = FestivalCli(exe)
    if named:
        installed = cli.installed_voices()
        missing = [v for v in named if v not in installed]
        if missing:
            raise KwsError(f"Festival voice(s) {missing} are not installed: `apt-get install "
                           f"{' '.join(VOICES[v].package for v in missing)}`")
    return cli

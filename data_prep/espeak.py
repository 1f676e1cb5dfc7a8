"""Offline speech synthesis with eSpeak NG.

The library comes from the ``espeakng-loader`` wheel (it bundles ``libespeak-ng`` and its data) and
is driven through :mod:`ctypes` following ``speak_lib.h``: ``espeak_Initialize`` in
``AUDIO_OUTPUT_SYNCHRONOUS`` mode, a synth callback that collects the int16 samples, voices chosen
with ``espeak_SetVoiceByName("en-us+m3")`` (language + voice variant) and ``espeak_SetParameter``
for rate (words per minute) and pitch (0-100).  When the wheel is missing a system ``espeak-ng``
executable is run with ``--stdout`` instead.  With neither, :func:`get_synthesizer` raises a
:class:`~kws_proto.errors.KwsError` that says what to install.

eSpeak NG is a process-wide C library: one :class:`LibEspeak` per process.  Its output is not a
pure function of (text, voice): internal state that ``espeak_Initialize`` does not reset (pitch
flutter phase, noise generators) carries from one utterance to the next, so the same word comes
out a few samples longer or shorter depending on what was spoken before, and breathy variants
draw noise from a generator seeded at start-up.  A freshly loaded library given the same calls,
with ``espeak_ng_SetRandSeed`` before each, is byte-identical: :mod:`data_prep.synth` uses one
fresh process per speaker and passes a seed per clip.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import subprocess
from dataclasses import dataclass, replace

import numpy as np
import soundfile as sf

from kws_proto.errors import ConfigError, KwsError

# speak_lib.h constants
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
ESPEAK_PHONEMES = 0x100  # synth flag: read [[...]] as eSpeak phoneme mnemonics
ESPEAK_RATE = 1
ESPEAK_PITCH = 3
EE_OK = 0
RATE_MIN, RATE_MAX = 80, 450
#: Accents whose eSpeak NG voice file has another name ("en" is British English).
_VOICE_FILES = {"en-gb": "en"}


@dataclass(frozen=True)
class Voice:
    """One eSpeak NG voice setting: a "speaker" of the synthetic corpus.

    Parameters
    ----------
    accent : str
        eSpeak language / dialect, e.g. ``"en-us"``, ``"en-gb-scotland"``, ``"en-029"``.
    variant : str
        Voice variant file of ``espeak-ng-data/voices/!v``, e.g. ``"m3"``, ``"f2"``.
    rate : int in [80, 450]
        Speaking speed, words per minute.
    pitch : int in [0, 100]
        Base pitch (50 is the voice's normal pitch).
    """

    ENGINE = "espeak"

    accent: str
    variant: str
    rate: int = 175
    pitch: int = 50

    def __post_init__(self) -> None:
        if not RATE_MIN <= self.rate <= RATE_MAX:
            raise ConfigError(f"rate={self.rate} must be in [{RATE_MIN}, {RATE_MAX}] words/min")
        if not 0 <= self.pitch <= 100:
            raise ConfigError(f"pitch={self.pitch} must be in [0, 100]")

    @property
    def name(self) -> str:
        """The eSpeak voice name, ``accent+variant``."""
        return f"{_VOICE_FILES.get(self.accent, self.accent)}+{self.variant}"

    @property
    def speaker_key(self) -> str:
        """What the corpus hashes into the speaker's id."""
        return f"{self.accent}|{self.variant}|{self.rate}|{self.pitch}"

    def faster(self, ratio: float) -> "Voice | None":
        """This setting sped up by ``ratio`` (> 1) and a little more, or ``None`` at its fastest."""
        if self.rate >= RATE_MAX:
            return None
        return replace(self, rate=min(RATE_MAX, int(np.ceil(self.rate * ratio * 1.05))))


class _Event(ctypes.Structure):
    """``espeak_EVENT`` of speak_lib.h (only passed through, never read)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class LibEspeak:
    """eSpeak NG through ctypes on the library bundled by ``espeakng-loader``."""

    backend = "espeakng-loader"
    _instance: "LibEspeak | None" = None

    def __init__(self) -> None:
        # lazy: optional `espeakng_loader`
        import espeakng_loader  # ImportError when the wheel is missing

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)  # absent from older builds
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
        data = espeakng_loader.get_data_path().encode()
        self._variants = set(os.listdir(os.path.join(data.decode(), "voices", "!v")))
        self.sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise KwsError(f"eSpeak NG failed to initialise with data {data.decode()!r}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: Voice | None = None

    @classmethod
    def instance(cls) -> "LibEspeak":
        """The process's one initialised library."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def _set_voice(self, voice: Voice) -> None:
        if voice == self._voice:
            return
        if voice.variant not in self._variants:
            raise ConfigError(f"eSpeak NG has no voice variant {voice.variant!r}")
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != EE_OK:
            raise ConfigError(f"eSpeak NG has no voice {voice.name!r} (accent+variant)")
        self._lib.espeak_SetParameter(ESPEAK_RATE, voice.rate, 0)
        self._lib.espeak_SetParameter(ESPEAK_PITCH, voice.pitch, 0)
        self._voice = voice

    def synthesize(self, text: str, voice: Voice, seed: int | None = None) -> np.ndarray:
        """Speak ``text`` with ``voice``.

        Parameters
        ----------
        text : str
        voice : Voice
        seed : int, optional
            Seeds eSpeak NG's noise generator (breathy voices) before speaking.

        Returns
        -------
        y : np.ndarray [shape=(n,), dtype=int16]
            Samples at :attr:`sample_rate` Hz.
        """
        self._set_voice(voice)
        if seed is not None and self._set_seed is not None:
            self._set_seed(seed % (2**31))
        self._chunks = []
        raw = text.encode("utf-8") + b"\0"
        flags = ESPEAK_CHARS_UTF8 | (ESPEAK_PHONEMES if "[[" in text else 0)
        err = self._lib.espeak_Synth(raw, len(raw), 0, 1, 0, flags, None, None)
        if err != EE_OK:
            raise KwsError(f"eSpeak NG failed on {text!r} with voice {voice.name!r} (error {err})")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks).astype(np.int16, copy=False)

    def phonemes(self, text: str, voice: Voice) -> str:
        """``text`` as ``voice``'s language says it, in eSpeak NG's ASCII phoneme mnemonics (what
        ``espeak-ng -x`` prints, e.g. ``"h'eI dZ'A@vIs"`` for "hey jarvis"; ``[[...]]`` around
        such a string makes :meth:`synthesize` speak it).  Clauses are joined by spaces."""
        self._set_voice(voice)
        buf = ctypes.c_char_p(text.encode("utf-8") + b"\0")
        ptr = ctypes.pointer(buf)
        out = []
        while ptr.contents.value:
            got = self._lib.espeak_TextToPhonemes(ptr, ESPEAK_CHARS_UTF8, 0)
            if got:
                out.append(got.decode("utf-8", "replace").strip())
        return " ".join(p for p in out if p)


class CliEspeak:
    """eSpeak NG through a system ``espeak-ng`` executable (``--stdout`` WAV)."""

    backend = "espeak-ng executable"

    def __init__(self, exe: str) -> None:
        self._exe = exe
        self.sample_rate = 22050

    def synthesize(self, text: str, voice: Voice, seed: int | None = None) -> np.ndarray:
        """Speak ``text`` with ``voice``; returns int16 samples [shape=(n,)] at :attr:`sample_rate`.

        ``seed`` is ignored: the executable offers no way to seed its noise generator.
        """
        cmd = [self._exe, "--stdout", "-v", voice.name, "-s", str(voice.rate), "-p", str(voice.pitch), text]
        proc = subprocess.run(cmd, capture_output=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise KwsError(f"{self._exe} failed on {text!r} with voice {voice.name!r}: {err}")
        y, sr = sf.read(io.BytesIO(proc.stdout), dtype="int16")
        self.sample_rate = sr
        return y if y.ndim == 1 else y[:, 0]

    def phonemes(self, text: str, voice: Voice) -> str:
        """``text`` in eSpeak NG's ASCII phoneme mnemonics (``espeak-ng -q -x``)."""
        proc = subprocess.run([self._exe, "-q", "-x", "-v", voice.name, text], capture_output=True,
                              check=False)
        if proc.returncode != 0:
            raise KwsError(f"{self._exe} -x failed on {text!r}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
        return " ".join(proc.stdout.decode("utf-8", "replace").split())


def get_synthesizer(prefer: str = "auto") -> "LibEspeak | CliEspeak":
    """The eSpeak NG synthesiser of this process.

    Parameters
    ----------
    prefer : {"auto", "library", "executable"}
        ``"auto"`` uses the ``espeakng-loader`` wheel and falls back to a system ``espeak-ng``.

    Raises
    ------
    KwsError
        Neither the wheel nor the executable is available.
    """
    if prefer not in ("auto", "library", "executable"):
        raise ConfigError(f"prefer={prefer!r} must be 'auto', 'library' or 'executable'")
    if prefer in ("auto", "library"):
        try:
            return LibEspeak.instance()
        except (ImportError, OSError) as e:
            if prefer == "library":
                raise KwsError(f"the espeakng-loader wheel is unusable ({e})") from e
    exe = shutil.which("espeak-ng")
    if exe:
        return CliEspeak(exe)
    raise KwsError(
        "eSpeak NG is not available: install the wheel (pip install 'kws_proto[synth]', i.e. "
        "espeakng-loader) or a system espeak-ng (apt-get install espeak-ng)"
    )

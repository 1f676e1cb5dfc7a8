"""Word lists: the built-in corpus's vocabulary and the keywords it must leave out.

The synthetic corpus trains an encoder that is then tested on real keywords it has never heard, so
its vocabulary excludes the 35 Google Speech Commands words (which include the ten digits of FSDD),
the six Picovoice wake words and every word of those phrases, and a few exact homophones of them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from kws_proto.errors import ConfigError

#: The ten command words of Speech Commands ("core" test classes).
CORE_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: The digits spoken in Speech Commands and in FSDD.
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: The 30 words of Speech Commands v0.01.
SPEECH_COMMANDS_V1 = CORE_WORDS + DIGITS + (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
)
#: The 35 words of Speech Commands v0.02 (v0.01 plus five).
SPEECH_COMMANDS_V2 = SPEECH_COMMANDS_V1 + ("backward", "forward", "follow", "learn", "visual")
#: The Picovoice wake-word benchmark keywords.
PICOVOICE_WORDS = ("alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass")
#: Words that sound exactly like an excluded one.
HOMOPHONES = ("know", "write", "rite", "wright", "for", "fore", "to", "too", "won", "ate", "oh")

#: Every word the built-in corpus must not contain (each word of a phrase too).
EXCLUDED = frozenset(
    SPEECH_COMMANDS_V2
    + PICOVOICE_WORDS
    + tuple(w for phrase in PICOVOICE_WORDS for w in phrase.split())
    + HOMOPHONES
)

#: The default vocabulary: everyday English of one to five syllables and many onsets.
DEFAULT_WORDS = tuple(
    """
    apple banana orange lemon cherry grape melon peach pepper carrot potato tomato onion garlic
    butter cheese bread coffee water sugar honey candle window garden kitchen pocket button
    blanket pillow mountain river ocean island desert valley thunder lightning rainbow winter
    summer autumn morning evening tonight yesterday tomorrow monday friday sunday january october
    december music guitar piano violin trumpet drum rocket planet galaxy comet engine motor
    bicycle bus taxi train airplane helicopter tractor pencil paper letter number picture camera
    radio robot rabbit tiger lion monkey zebra turtle dolphin penguin giraffe elephant kangaroo
    spider butterfly eagle parrot chicken horse sheep goat mouse pizza noodle pasta salad cookie
    chocolate vanilla yellow purple silver golden crimson green black white bright quiet gentle
    simple hello goodbye please thanks sorry maybe really never always often again begin finish
    open close pause resume repeat cancel enter escape delete select search record volume louder
    softer faster slower lamp heater curtain door alarm timer clock weather battery message
    calendar reminder shopping medicine doctor teacher student farmer pilot captain soldier sailor
    baker artist police office hotel library museum hospital station airport village castle
    bridge tunnel harbor magic dragon wizard giant pirate treasure diamond crystal marble velvet
    cotton leather plastic metal wooden energy signal network program pixel vector matrix zigzag
    puzzle riddle jungle safari tornado volcano avalanche blizzard sunshine shadow whisper giggle
    sneeze hiccup yawn jump kick push pull climb swim dance sing laugh smile shout knock ring
    buzz beep splash crash bounce twist shake squeeze quantum oxygen hydrogen amazing fantastic
    excellent elegant umbrella igloo yoga zipper jacket kettle ladder needle orchestra quarter
    saddle thimble waffle yogurt basket hammer wrench scissors bottle jelly muffin pretzel walnut
    peanut cabbage lettuce pumpkin cucumber avocado
    """.split()
)

_BAD_WORD = re.compile(r"[/\\\x00]|^[._]|^\s|\s$")


def check_words(words: list[str] | tuple[str, ...], exclude: frozenset[str] = EXCLUDED) -> list[str]:
    """Validate a vocabulary: distinct, usable as folder names, none of ``exclude``.

    Parameters
    ----------
    words : list of str
        Words or short phrases (lower-cased here).
    exclude : frozenset of str
        Words that must not appear, alone or inside a phrase.

    Returns
    -------
    words : list of str
        The lower-cased words in their given order.

    Raises
    ------
    ConfigError
        A duplicate, an empty or unsafe name (``/``, leading ``.`` or ``_``), or an excluded word.
    """
    out: list[str] = []
    seen: set[str] = set()
    for raw in words:
        w = " ".join(raw.lower().split())
        if not w or _BAD_WORD.search(w):
            raise ConfigError(f"word {raw!r} cannot be a keyword folder name")
        if w in seen:
            raise ConfigError(f"word {w!r} is listed twice")
        hit = [p for p in (w, *w.split()) if p in exclude]
        if hit:
            raise ConfigError(
                f"word {w!r} is excluded ({hit[0]!r} is a Speech Commands, digit or Picovoice "
                "keyword kept unseen for testing)"
            )
        seen.add(w)
        out.append(w)
    return out


def load_words_file(path: str | os.PathLike, exclude: frozenset[str] = EXCLUDED) -> list[str]:
    """Read a word list: one word or phrase per line, blank lines and ``#`` comments skipped.

    Raises
    ------
    ConfigError
        The file is missing or empty, or a word is invalid (see :func:`check_words`).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--words-file {p}: no such file")
    lines = [ln.split("#", 1)[0].strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    words = [ln for ln in lines if ln]
    if not words:
        raise ConfigError(f"--words-file {p}: holds no words")
    try:
        return check_words(words, exclude)
    except ConfigError as e:
        raise ConfigError(f"--words-file {p}: {e}") from e

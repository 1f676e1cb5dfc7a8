"""The evaluation suites: the sets of words every encoder is scored on, as one importable object.

- ``builtin``: the test words of the run's own dataset (for the demo, the built-in corpus's
  unseen words and voices);
- ``fsdd``: the Free Spoken Digit Dataset's ten digits, support and query from different
  speakers (``../shared/data/fsdd``);
- ``picovoice``: the six wake words of Picovoice's benchmark (``../shared/data/picovoice``; no
  speaker ids);
- :func:`folder`: any keyword folder of one's own.

The real-speech folders are found in ``$KWS_SHARED_DATA`` or ``../shared/data`` beside the
repository, and indexed once into ``data/<name>`` (``kws-prep folder``).  ``make demo``,
``make pretrained``, the experiments scripts and the benchmarks all read them from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from data_prep.folder import index_folder

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data"))


@dataclass(frozen=True)
class Suite:
    """Where a suite's clips are and how its episodes are drawn.

    Attributes
    ----------
    name : str
    source : Path or None
        A keyword folder to index (None: the run's own dataset).
    classes : tuple of str or None
        The words episodes are drawn from (None: the dataset's test split).
    speaker_disjoint : bool
        Support and query of a class from different speakers.
    grid : str
        The way x shot cells it is scored at, e.g. ``"5x1,5x5,10x5"``.
    """

    name: str
    source: Path | None = None
    classes: tuple[str, ...] | None = None
    speaker_disjoint: bool = False
    grid: str = "5x1,5x5,10x5"

    def available(self) -> bool:
        """Whether its clips are on this machine (the built-in suite always is)."""
        return self.source is None or self.source.is_dir()

    def dataset(self, data_root: str | os.PathLike = "data") -> Path | None:
        """The prepared folder to score on (indexed into ``data_root/<name>`` on first use), or
        None for the run's own dataset."""
        if self.source is None:
            return None
        out = Path(data_root) / self.name
        if not (out / "manifest.csv").is_file():
            index_folder(self.source, out)
        return out


BUILTIN = Suite("builtin")
FSDD = Suite("fsdd", SHARED / "fsdd", tuple(str(d) for d in range(10)), True, "5x1,5x5,10x5")
PICOVOICE = Suite("picovoice", SHARED / "picovoice",
                  ("alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass"), False, "5x1,5x5")
#: the real-speech suites, which no encoder here trains on
REAL = (FSDD, PICOVOICE)


def folder(path: str | os.PathLike, classes=None, speaker_disjoint: bool = False,
           grid: str = "5x1,5x5") -> Suite:
    """A suite over a keyword folder of one's own (``SRC/<keyword>/*.wav``)."""
    path = Path(path)
    return Suite(path.name, path, tuple(classes) if classes else None, speaker_disjoint, grid)

"""Spotting in running audio: fed chunks of any size, the same events as the offline ``detect``.

    from kws_proto.spot.streaming import StreamingSpotter
    stream = StreamingSpotter(spotter, bank)             # spotter: a KeywordSpotter
    for chunk in chunks:                                 # 1-D float32 at the front end's rate
        for e in stream.push(chunk):
            print(e.keyword, e.start, e.end, e.score)
    for e in stream.flush():                             # the end of the audio
        ...

The windows are :func:`kws_proto.spot.detect.detect_audio`'s (:mod:`kws_proto.spot.windows`):
one clip length (1 s) every ``hop`` seconds from the first sample, each scored (:func:`~kws_proto.spot.detect.window_scores`)
as soon as its last sample has arrived; :meth:`StreamingSpotter.flush` scores the zero-padded
windows of the tail exactly as the offline detector pads its last window.  The decisions go
through the same :class:`~kws_proto.spot.detect.EventMerger`, which releases an event once no
later window can join it or out-score it.  So the events of a recording fed in any chunks are
``KeywordSpotter.detect``'s: the same keywords, starts, ends and peaks; scores and distances
agree to float round-off (the encoder's output for a window moves by ~1e-7 with the size of the
batch it is computed in).

**Memory.**  Between calls it holds less than one window of audio (the samples from the next
window's start on), the merger's open run and the events it has not released yet; a call also
holds its own chunk, and scores its windows in batches of
:data:`~kws_proto.spot.windows.WINDOW_BATCH`.

**Latency.**  A window is scored in the call that delivers its last sample.  An event ending at
``end`` s (its last hit window's end) is returned by the call that brings the audio to
``end + max(window, (max_gap + 1) * hop)`` s, 1 s past its end with the defaults (the merger
waits for the run to close and for every later window that could overlap it), plus the chunk's
own length.  Times are seconds from the first sample pushed.
"""

from __future__ import annotations

import time

import numpy as np

from kws_proto.errors import AudioError, ConfigError
from kws_proto.spot.detect import (MAX_GAP, MIN_DB, MIN_HITS, Detection, Event, EventMerger,
                                   window_scores)
from kws_proto.spot.windows import HOP, WINDOW_BATCH, Framing


class StreamingSpotter:
    """Incremental :meth:`KeywordSpotter.detect <kws_proto.spot.spotter.KeywordSpotter.detect>`.

    Parameters
    ----------
    spotter : KeywordSpotter
    bank : KeywordBank
        Checked against ``spotter`` (:meth:`KeywordSpotter.check_bank`).
    hop, min_hits, max_gap, min_db
        As for :func:`kws_proto.spot.detect.detect_audio`.
    """

    def __init__(self, spotter, bank, hop: float = HOP, min_hits: int = MIN_HITS,
                 max_gap: int = MAX_GAP, min_db: float | None = MIN_DB):
        f = spotter.features
        self.framing = Framing.of(f, hop)
        spotter.check_bank(bank)
        self.spotter, self.bank, self.hop, self.min_db = spotter, bank, hop, min_db
        self.sample_rate, self.window = f.sample_rate, f.num_samples
        self.hop_samples = self.framing.hop
        self._merger = EventMerger(bank.names, f.clip_seconds, min_hits=min_hits, max_gap=max_gap)
        self._buffer = np.zeros(0, np.float32)  # samples from window ``_next``'s start on
        self._next = 0  # index of the next window to score
        self.received = 0  # samples pushed so far
        self.windows = 0  # windows scored so far
        self.seconds = 0.0  # processing time spent in push and flush
        self._flushed = False

    @property
    def duration(self) -> float:
        """Seconds of audio pushed so far."""
        return self.received / self.sample_rate

    def push(self, samples) -> list[Event]:
        """Append ``samples`` (1-D, at the front end's rate, float in [-1, 1]); return the events
        that became final, in order of start."""
        if self._flushed:
            raise ConfigError("this stream was flushed (its audio ended); start a new "
                              "StreamingSpotter for more audio")
        y = np.asarray(samples, dtype=np.float32)
        if y.ndim != 1:
            raise AudioError(f"a chunk of shape {y.shape}: push 1-D mono samples")
        if not np.all(np.isfinite(y)):
            raise AudioError("a chunk holds non-finite samples (NaN or Inf)")
        t0 = time.perf_counter()
        self._buffer = np.concatenate([self._buffer, y])
        self.received += len(y)
        events = self._score(max(0, self.framing.complete(self.received) - self._next))
        self.seconds += time.perf_counter() - t0
        return events

    def flush(self) -> list[Event]:
        """End of the audio: score the zero-padded tail windows (``detect``'s last window) and
        return every remaining event.  Audio shorter than a window is one padded window, as
        offline; no audio at all gives no event."""
        if self._flushed:
            return []
        t0 = time.perf_counter()
        events: list[Event] = []
        if self.received:
            events = self._score(self.framing.count(self.received) - self._next)
        events += self._merger.flush()
        self._flushed = True
        self.seconds += time.perf_counter() - t0
        return events

    def detection(self, events: list[Event]) -> Detection:
        """A :class:`~kws_proto.spot.detect.Detection` of the audio pushed so far and ``events``
        (what the calls returned)."""
        return Detection(list(events), self.duration, self.seconds, self.windows, self.hop)

    def _score(self, count: int) -> list[Event]:
        """Score the next ``count`` windows (the last one zero-padded past the audio)."""
        out: list[Event] = []
        h, n = self.hop_samples, self.window
        for first in range(0, count, WINDOW_BATCH):
            m = min(WINDOW_BATCH, count - first)
            offset = first * h  # of this batch's first window in the buffer
            span = self._buffer[offset:offset + (m - 1) * h + n]
            windows = self.framing.frame(span)[:m]  # zero-padded only past the audio's end
            labels, ratio, dist = window_scores(self.spotter, self.bank, windows, self.min_db)
            for j in range(m):
                start = self.framing.start(self._next + first + j)
                out += self._merger.push(start, int(labels[j]), float(ratio[j]), float(dist[j]))
        self._next += count
        self.windows += count
        self._buffer = self._buffer[count * h:]  # keep from the next window's start on
        return out


def detect_chunks(stream: StreamingSpotter, chunks, on_event=None) -> Detection:
    """Push every chunk of the iterable ``chunks`` into ``stream``, flush it, and return the
    :class:`~kws_proto.spot.detect.Detection`; ``on_event(event)`` is called as each is
    released."""
    events: list[Event] = []

    def take(new):
        for e in new:
            events.append(e)
            if on_event is not None:
                on_event(e)

    for chunk in chunks:
        take(stream.push(chunk))
    take(stream.flush())
    return stream.detection(events)

"""Spot enrolled keywords in long audio: a 1 s window slides every --hop seconds, each window is
scored against the bank, and consecutive hits of a keyword merge into events (keyword, start,
end, score).  Prints the events and the real-time factor (processing time / audio duration).

AUDIO `-` reads raw PCM from stdin: 16 kHz mono, 16-bit signed little-endian, no header (e.g.
`sox in.wav -t raw -r 16000 -e signed -b 16 -c 1 - | kws-proto detect BANK -`); events are
printed as they become final.  A WAV/FLAC/Ogg header or an odd byte count is refused.

With --mic (needs the optional `sounddevice` package: pip install 'kws_proto[mic]') it listens
to the default microphone instead and prints events as they end, until Ctrl-C or --seconds.
Both run kws_proto.spot.streaming.StreamingSpotter: the same events as for a file.
"""

from __future__ import annotations

import json
import queue
import sys
import time
from pathlib import Path

from kws_proto.errors import ConfigError
from kws_proto.spot.detect import MAX_GAP, MIN_DB, MIN_HITS
from kws_proto.spot.windows import HOP
from kws_proto.util.cli import finite_float, nonnegative_int, positive_float, positive_int

HELP = "spot keywords of a bank in long audio (a file, - for stdin, or --mic)"


def add_arguments(p) -> None:
    p.add_argument("bank", type=Path, help="a keyword bank file written by `kws-proto enroll`")
    p.add_argument("audio", nargs="?", type=Path,
                   help="a recording of any length (WAV/FLAC/OGG), or - for raw 16 kHz mono "
                        "int16 little-endian PCM on stdin")
    p.add_argument("--hop", type=positive_float, default=HOP, help="seconds between windows")
    p.add_argument("--min-hits", type=positive_int, default=MIN_HITS, help="windows an event needs")
    p.add_argument("--max-gap", type=nonnegative_int, default=MAX_GAP,
                   help="missed windows an event may bridge")
    p.add_argument("--min-db", type=finite_float, default=MIN_DB,
                   help="windows quieter than this (RMS, dBFS) are never a keyword")
    p.add_argument("--model", default=None,
                   help="the bank's encoder at another place (a run directory or `default`)")
    p.add_argument("--mic", action="store_true", help="listen to the microphone instead")
    p.add_argument("--seconds", type=positive_float, default=None, help="with --mic: stop after this long")
    p.add_argument("--json", action="store_true", help="print JSON")


def _event_line(e) -> str:
    return f"{e.start:8.2f} - {e.end:8.2f} s  {e.keyword:<16} score {e.score:.3f}"


def run(args) -> int:
    from kws_proto.spot.bank import load_bank  # lazy: --help builds every parser
    from kws_proto.spot.spotter import KeywordSpotter  # lazy: --help builds every parser

    if args.mic == (args.audio is not None):
        raise ConfigError("give either an AUDIO file or --mic")
    if args.mic:
        try:
            import sounddevice  # lazy: optional extra `mic`
        except (ImportError, OSError) as e:
            raise ConfigError(f"--mic needs the optional package sounddevice "
                              f"(pip install 'kws_proto[mic]'): {e}") from None
    bank = load_bank(args.bank)
    spotter = KeywordSpotter.for_bank(bank, args.model)
    if args.mic:
        return _listen(spotter, bank, args, sounddevice)
    if str(args.audio) == "-":
        return _stdin(spotter, bank, args)
    result = spotter.detect(bank, args.audio, hop=args.hop, min_hits=args.min_hits,
                            max_gap=args.max_gap, min_db=args.min_db)
    return _report(result, args)


def _report(result, args) -> int:
    if args.json:
        print(json.dumps({"path": str(args.audio), **result.to_dict()}, indent=2))
        return 0
    if str(args.audio) != "-":
        for e in result.events:
            print(_event_line(e))
    print(f"{len(result.events)} event(s) in {result.duration:.1f} s of audio; {result.windows} "
          f"windows, {result.seconds:.2f} s processing: real-time factor {result.rtf:.4f}")
    return 0


def _streaming(spotter, bank, args):
    from kws_proto.spot.streaming import StreamingSpotter  # lazy: --help builds every parser

    return StreamingSpotter(spotter, bank, hop=args.hop, min_hits=args.min_hits,
                            max_gap=args.max_gap, min_db=args.min_db)


def _stdin(spotter, bank, args) -> int:
    """Raw PCM from stdin through a StreamingSpotter; events printed as they are released."""

    from kws_proto.audio.pcm import read_pcm16  # lazy: --help builds every parser
    from kws_proto.spot.streaming import detect_chunks  # lazy: --help builds every parser

    stream = _streaming(spotter, bank, args)
    show = None if args.json else (lambda e: print(_event_line(e), flush=True))
    chunks = read_pcm16(sys.stdin.buffer, stream.hop_samples, name="stdin")
    return _report(detect_chunks(stream, chunks, on_event=show), args)


def _listen(spotter, bank, args, sd) -> int:
    """Microphone blocks of one hop through a StreamingSpotter; print events as they close."""
    stream = _streaming(spotter, bank, args)
    blocks: queue.Queue = queue.Queue()
    t0 = time.monotonic()
    print(f"listening at {stream.sample_rate} Hz for {', '.join(bank.names)} (Ctrl-C stops)",
          flush=True)
    with sd.InputStream(samplerate=stream.sample_rate, channels=1, dtype="float32",
                        blocksize=stream.hop_samples,
                        callback=lambda data, *_: blocks.put(data[:, 0].copy())):
        while args.seconds is None or time.monotonic() - t0 < args.seconds:
            for e in stream.push(blocks.get()):
                print(_event_line(e), flush=True)
    for e in stream.flush():
        print(_event_line(e), flush=True)
    return 0

"""Raw PCM from a byte stream (a pipe, stdin): 16-bit signed little-endian mono samples.

``kws-proto detect BANK -`` reads its audio this way, e.g.::

    sox in.wav -t raw -r 16000 -e signed -b 16 -c 1 - | kws-proto detect my.bank.npz -
    arecord -f S16_LE -r 16000 -c 1 -t raw | kws-proto detect my.bank.npz -

There is no header, so nothing says the rate: the samples are taken to be at the reader's rate
(the front end's, 16 kHz).  A stream that is evidently not raw PCM is refused with an
:class:`~kws_proto.errors.AudioError`: one that starts like an audio file (``RIFF`` WAV,
``fLaC``, ``OggS``: give the file's path instead, or strip its header), and one that ends after an
odd number of bytes (not whole 16-bit samples).
"""

from __future__ import annotations

import numpy as np

from kws_proto.errors import AudioError, ConfigError

#: Magic bytes of audio files that are not raw PCM, and what they are.
CONTAINERS = {b"RIFF": "a WAV file (RIFF header)", b"fLaC": "a FLAC file", b"OggS": "an Ogg file"}
SCALE = 32768.0


def read_pcm16(stream, chunk_samples: int = 1600, name: str = "stdin"):
    """Yield float32 chunks (``[<= chunk_samples]``, in [-1, 1)) of the raw PCM in ``stream``.

    Parameters
    ----------
    stream : binary file object
        Read with ``read(n)`` until it returns no bytes (end of stream).
    chunk_samples : int > 0
        Samples per chunk (the last may be shorter).
    name : str
        What the errors call the stream.

    Raises
    ------
    AudioError
        The stream starts with the header of an audio file, holds no bytes, or ends after an odd
        number of bytes.
    """
    if chunk_samples <= 0:
        raise ConfigError(f"chunk_samples={chunk_samples} must be positive")
    total, carry = 0, b""
    while True:
        data = stream.read(2 * chunk_samples)
        if not data:
            break
        if total < 4:
            head = (carry + data)[:4]
            kind = CONTAINERS.get(head) if len(head) == 4 else None
            if kind is not None:
                raise AudioError(
                    f"{name} starts with {head.decode('ascii')!r}: that is {kind}, not raw PCM; "
                    "give the file's path instead of '-', or pipe raw 16-bit little-endian mono "
                    "samples (e.g. sox FILE -t raw -r 16000 -e signed -b 16 -c 1 -)")
        total += len(data)
        data = carry + data
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        if whole:
            yield np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / SCALE
    if carry:
        raise AudioError(f"{name} ended after {total} bytes, an odd number: raw 16-bit PCM has "
                         "2 bytes per sample (is it 8-bit, or another format?)")
    if not total:
        raise AudioError(f"{name} held no audio (0 bytes of raw 16-bit PCM)")

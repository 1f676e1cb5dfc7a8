"""From episodes (row indices) to model-ready ``(support, query)`` tensors, through ``tf.data``.

Two sources, chosen by the augmentation config:

- *augmented* (``augment.enabled``): the clips' waveforms are gathered from the waveform cache
  ``[n_clips, num_samples]``, then shifted and mixed with background noise
  (:func:`kws_proto.audio.augment.augment`, XLA-compiled) and turned into MFCC by
  :func:`kws_proto.audio.features.mfcc_batch`, all inside the ``tf.data`` graph, with a fresh draw for
  every episode; without the front end's dither (``FeatureConfig.dither_db``), as their
  augmentation noise is their floor;
- *plain*: rows of the un-augmented feature cache ``[n_clips, frames, n_mfcc]`` are gathered as
  they are (or, without a feature cache, MFCC of the raw waveforms).

Per-clip tables (``tables``, e.g. a frozen embedding of every clip, :mod:`kws_proto.model.beside`)
ride along: each episode then also carries, per table, the rows of its support and query clips.

Silence rows (:data:`kws_proto.data.episodes.SILENCE`) become background noise at a volume from
U(0, ``augment.silence_volume``) on either path.  Every random draw of episode ``i`` is keyed by
``(seed, i)``, so the tensors depend only on the seed and the episode, not on the order or
number of passes.  ``prefetch`` lets the next episode be prepared while the model trains on
the current one; the feed's graph ops run single-threaded on ``tf.data``'s threads, except the
FFT and the XLA-compiled augmentation, which use the training step's intra-op pool.
The augmented feed costs about as much CPU as a ProtoRes step, so it overlaps the step only on
a core the step leaves free (``train.feed_cores``; measured in experiments/speed.md,
``benchmarks/bench_pipeline.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from kws_proto.audio.augment import (DRAWS, AugmentConfig, augment_function, fold, seeds,
                                     silence, spec_mask)
from kws_proto.data.cache import to_float32
from kws_proto.data.episodes import SILENCE, Episode, EpisodeSampler
from kws_proto.errors import ConfigError, DatasetError
from kws_proto.audio.features import FeatureConfig, dct_matrix, mfcc_batch


class EpisodePipeline:
    """Episode tensors from a feature cache or a waveform cache.

    Parameters
    ----------
    feature_config : FeatureConfig
        The front end the caches were made with (and that the augmented path runs).
    features : np.ndarray [shape=(n_clips, frames, n_mfcc)] or None
        Un-augmented feature cache (a memmap is fine), row ``i`` = manifest row ``i``.
    waveforms : np.ndarray [shape=(n_clips, num_samples)] or None
        Waveform cache (float32, or int16 read as ``int16 / 32768``); needed when
        ``augment.enabled``.
    noise : np.ndarray [shape=(m,)] or None
        Background noise joined end to end (:func:`kws_proto.audio.augment.load_noise`); needed for
        silence rows, optional for augmentation (without it only the time shift applies).
        Shorter than a clip: it is repeated.
    augment : AugmentConfig or None
        None: no augmentation.
    seed : int
        Keys the augmentation and the silence clips of every episode, with its index.
    tables : dict of str to np.ndarray [shape=(n_clips, d)], optional
        Per-clip rows gathered with each episode's clips (silence rows get zeros); each
        element then has a third part, ``{name: (support [n_way, k_shot, d], query [n_way,
        n_query, d])}``.

    Examples
    --------
    >>> pipe = EpisodePipeline(fc, waveforms=waveform_cache(m, fc), noise=noise,
    ...                        augment=AugmentConfig(), seed=0)
    >>> for support, query in pipe.dataset(sampler).take(1000):
    ...     train_step(support, query)  # [n_way, k, frames, n_mfcc], [n_way, q, frames, n_mfcc]
    """

    def __init__(
        self,
        feature_config: FeatureConfig,
        *,
        features: np.ndarray | None = None,
        waveforms: np.ndarray | None = None,
        noise: np.ndarray | None = None,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        tables: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.feature_config = feature_config
        self.augment = augment if augment is not None else AugmentConfig(enabled=False)
        self.seed = int(seed)
        frames_shape = tuple(feature_config.shape)
        num_samples = feature_config.num_samples
        if features is not None and (
            features.ndim != 3 or tuple(features.shape[1:]) != frames_shape
        ):
            raise ConfigError(
                f"feature cache of shape {features.shape} does not match the feature config "
                f"(rows of {frames_shape}); rebuild the cache"
            )
        if waveforms is not None and (waveforms.ndim != 2 or waveforms.shape[1] != num_samples):
            raise ConfigError(
                f"waveform cache of shape {waveforms.shape} does not match the feature config "
                f"(rows of {num_samples} samples); rebuild the cache"
            )
        if features is not None and waveforms is not None and len(features) != len(waveforms):
            raise ConfigError(
                f"feature cache has {len(features)} rows but waveform cache {len(waveforms)}"
            )
        if self.augment.enabled and waveforms is None:
            raise ConfigError("augmentation needs the waveform cache (waveforms=...)")
        if features is None and waveforms is None:
            raise ConfigError("EpisodePipeline needs a feature cache or a waveform cache")
        self.use_waveforms = self.augment.enabled or features is None
        self.source = waveforms if self.use_waveforms else features
        noise = np.zeros(0, np.float32) if noise is None else np.asarray(noise, np.float32)
        if noise.ndim != 1:
            raise ConfigError(f"noise must be 1-D (recordings joined), got shape {noise.shape}")
        if 0 < len(noise) < num_samples:
            noise = np.resize(noise, num_samples)  # repeat a short recording
        self.noise = tf.constant(noise) if len(noise) else None
        self.tables = {k: np.asarray(v, np.float32) for k, v in (tables or {}).items()}
        for name, table in self.tables.items():
            if table.ndim != 2 or len(table) != len(self.source):
                raise ConfigError(f"table {name!r} of shape {table.shape} does not have one row "
                                  f"per clip ({len(self.source)} rows)")

    def __len__(self) -> int:
        """Rows of the source cache (= manifest rows)."""
        return len(self.source)

    def dataset(
        self,
        episodes: EpisodeSampler | Sequence[Episode],
        start: int = 0,
        stop: int | None = None,
        every: int = 1,
        offsets: Sequence[int] = (0,),
    ) -> tf.data.Dataset:
        """``(support, query)`` of each episode, prefetched.

        Parameters
        ----------
        episodes : EpisodeSampler or sequence of Episode
            A sampler gives episodes ``start, start+1, ...`` (forever when ``stop`` is None); a
            sequence (e.g. :func:`kws_proto.data.episodes.fixed_episodes`) gives
            ``episodes[start:stop]``.
        every, offsets : int, sequence of int
            Keep only the episodes ``i`` with ``i % every`` in ``offsets`` (a shard: a worker's
            replicas of a multi-worker step, :class:`kws_proto.train.trainer.Trainer`); by
            default all.

        Returns
        -------
        tf.data.Dataset
            Elements ``(support [n_way, k_shot, frames, n_mfcc], query [n_way, n_query, frames,
            n_mfcc])`` float32, plus ``{name: (support_rows, query_rows)}`` with ``tables``;
            ``n_way`` counts the extra classes, and way, shot and query dims are ``None`` in
            the element spec so one ``tf.function`` trace serves all.
        """
        if isinstance(episodes, EpisodeSampler):
            if len(episodes.manifest) != len(self):
                raise DatasetError(
                    f"the sampler's manifest has {len(episodes.manifest)} rows but the cache "
                    f"{len(self)}: they come from different datasets"
                )
            lookup, has_silence = episodes.sample, episodes.silence
            ids = (tf.data.Dataset.counter(start) if stop is None
                   else tf.data.Dataset.range(start, stop))
        else:
            episodes = list(episodes)
            for e in episodes:
                top = max(int(e.support.max()), int(e.query.max()))
                if top >= len(self):
                    raise DatasetError(
                        f"episode {e.index} uses row {top} but the cache has {len(self)} rows"
                    )
            lookup = episodes.__getitem__
            has_silence = any((e.support == SILENCE).any() for e in episodes)
            stop = len(episodes) if stop is None else min(stop, len(episodes))
            ids = tf.data.Dataset.range(start, stop)
        if has_silence and self.noise is None:
            raise ConfigError(
                "a silence class needs background noise (noise=...), and there is none"
            )
        if set(range(every)) - set(offsets):  # a shard: drop the other workers' episodes
            keep = tf.constant(sorted(set(offsets)), tf.int64)
            ids = ids.filter(lambda i: tf.reduce_any(tf.equal(i % every, keep)))
        ds = ids.map(self._loader(lookup), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.map(self._tensors(has_silence), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
        options = tf.data.Options()
        # The feed's graph ops run on tf.data's own threads, one core each.  Not all of it:
        # the FFT (DUCC) and the XLA-compiled augmentation split their work over the device's
        # intra-op pool regardless of this option (perf: about a quarter of the feed's CPU
        # time ran on those threads), so that part shares the training step's pool.
        options.threading.max_intra_op_parallelism = 1
        return ds.prefetch(tf.data.AUTOTUNE).with_options(options)

    def _loader(self, lookup):
        """A ``tf.data`` map fn: position -> (episode index, gathered rows, silence mask, sizes)."""
        source, tables = self.source, list(self.tables.values())
        row_shape = tuple(source.shape[1:])

        def gather(i: np.int64):
            e = lookup(int(i))
            rows = np.concatenate([e.support, e.query], axis=1).reshape(-1)  # [n_way * (k + q)]
            is_silence = rows == SILENCE
            data = to_float32(source[np.where(is_silence, 0, rows)])  # int16 caches: / 32768
            sizes = np.asarray([e.n_way, e.k_shot, e.n_query], dtype=np.int32)
            extra = [np.where(is_silence[:, None], 0, t[np.where(is_silence, 0, rows)])
                     for t in tables]  # each [n_way * (k + q), d]
            return (np.int64(e.index), data, is_silence, sizes, *extra)

        def load(i):
            index, data, is_silence, sizes, *extra = tf.numpy_function(
                gather, [i], (tf.int64, tf.float32, tf.bool, tf.int32) + (tf.float32,) * len(tables),
                stateful=False,
            )
            index.set_shape([])
            data.set_shape([None, *row_shape])
            is_silence.set_shape([None])
            sizes.set_shape([3])
            for t, table in zip(extra, tables):
                t.set_shape([None, table.shape[1]])
            return (index, data, is_silence, sizes, *extra)

        return load

    def _tensors(self, has_silence: bool):
        """A ``tf.data`` map fn: gathered rows -> (support, query) features."""
        fc, aug, noise = self.feature_config, self.augment, self.noise
        augment = augment_function(aug, fc.sample_rate) if aug.enabled else None
        # augmented clips carry their own noise floor: no dither (FeatureConfig.dither_db)
        fc_wave = dataclasses.replace(fc, dither_db=None) if aug.enabled else fc
        seed = tf.constant(self.seed, tf.int64)
        frames, n_mfcc = fc.shape
        dct = dct_matrix(fc)  # [n_mels, n_mfcc], for masks on mel channels

        def fill_silence(x, is_silence, s_sil, to_features):
            where = tf.where(is_silence)  # [n_silence, 1]
            clips = silence(noise, tf.shape(where)[0], fc.num_samples, s_sil, aug.silence_volume)
            return tf.tensor_scatter_nd_update(x, where, to_features(clips))

        names = list(self.tables)

        def tensors(index, data, is_silence, sizes, *extra):
            s_aug, s_sil = tf.unstack(seeds(tf.stack([seed, index]), 2))
            if self.use_waveforms:
                waves = augment(data, noise, s_aug) if aug.enabled else data
                if has_silence:
                    waves = fill_silence(waves, is_silence, s_sil, lambda w: w)
                feats = mfcc_batch(waves, fc_wave)
            else:
                feats = data
                if has_silence:
                    feats = fill_silence(feats, is_silence, s_sil, lambda w: mfcc_batch(w, fc))
            if aug.enabled and aug.masks:
                feats = spec_mask(feats, dct, aug, fold(s_aug, DRAWS["masks"]))
            n_way, k, q = tf.unstack(sizes)
            feats = tf.reshape(feats, [n_way, k + q, frames, n_mfcc])  # rows were class-major
            if not names:
                return feats[:, :k], feats[:, k:]
            rows = [tf.reshape(t, [n_way, k + q, -1]) for t in extra]
            return feats[:, :k], feats[:, k:], {n: (r[:, :k], r[:, k:]) for n, r in zip(names, rows)}

        return tensors


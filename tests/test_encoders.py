"""Encoders: registry, errors, output sizes, every block and layout training, real wiring."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kws_proto.encoders import ENCODERS, build_encoder, encoder_defaults
from kws_proto.encoders.blocks import BasicBlock, BottleneckBlock, PreActBlock
from kws_proto.errors import ConfigError
from kws_proto.model.protonet import PrototypicalNetwork

SMALL = (20, 8)  # frames x n_mfcc of the fast tests
# tiny widths; layout, head and block pinned so that the tests do not follow the defaults
TINY = {"stem_filters": 3, "stem_stride": 1, "filters": (4, 5, 6), "dilations": (1, 2, 4),
        "kernel": 3, "layout": "temporal", "head": "avgpool", "block": "basic"}
BLOCK_CLASSES = {"basic": BasicBlock, "preact": PreActBlock, "bottleneck": BottleneckBlock}


def _episode(rng, n_way=2, k_shot=2, n_query=2, shape=SMALL):
    support = rng.standard_normal((n_way, k_shot, *shape)).astype(np.float32)
    query = rng.standard_normal((n_way, n_query, *shape)).astype(np.float32)
    return tf.constant(support), tf.constant(query)


def _blocks(encoder):
    return [layer for layer in encoder.layers if isinstance(layer, tuple(BLOCK_CLASSES.values()))]


def test_registry_holds_both_encoders_with_cited_sources():
    assert set(ENCODERS) == {"conv4", "ensemble", "protores"}
    for name, builder in ENCODERS.items():
        assert "arXiv" in (builder.__doc__ or ""), f"{name} builder cites no source"


def test_unknown_encoder_lists_known_names():
    with pytest.raises(ConfigError, match="'resnet50'.*conv4, ensemble, protores"):
        build_encoder("resnet50", (51, 40))
    with pytest.raises(ConfigError, match="resnet50"):
        encoder_defaults("resnet50")


def test_unknown_params_are_named():
    with pytest.raises(ConfigError, match="filtres.*accepted: filters"):
        build_encoder("conv4", (51, 40), filtres=8)
    with pytest.raises(ConfigError, match="depth, widths"):
        build_encoder("protores", (51, 40), widths=(8,), depth=3)


@pytest.mark.parametrize(
    "name, shape, params, named",
    [
        ("conv4", (51, 40), {"filters": 0}, "filters=0"),
        ("conv4", (51, 40), {"filters": 8.5}, "filters=8.5"),
        ("conv4", (15, 40), {}, r"input_shape=\(15, 40\) is too small"),
        ("conv4", (51,), {}, r"input_shape=\(51,\)"),
        ("protores", (51, 40), {"layout": "sideways"}, "layout='sideways'"),
        ("protores", (51, 40), {"head": "max"}, "head='max'"),
        ("protores", (51, 40), {"block": "dense"}, "block='dense'"),
        ("protores", (51, 40), {"filters": (8, -1, 8)}, r"filters=\(8, -1, 8\)"),
        ("protores", (51, 40), {"filters": "24,32"}, "filters='24,32'"),
        ("protores", (51, 40), {"dilations": (1, 2)}, "same length"),
        ("protores", (51, 40), {"kernel": 0}, "kernel=0"),
        ("protores", (51, 40), {"stem_stride": True}, "stem_stride=True"),
        ("protores", (2, 40), {"head": "global"}, r"input_shape=\(2, 40\) is too short"),
        ("protores", (4, 40), {"head": "avgpool", "stem_stride": 2}, "at least 5 frames"),
        ("protores", (0, 40), {}, "frames"),
    ],
)
def test_bad_values_raise_config_error_naming_them(name, shape, params, named):
    with pytest.raises(ConfigError, match=named):
        build_encoder(name, shape, **params)


def test_defaults_are_the_builders_and_yaml_lists_are_accepted():
    defaults = encoder_defaults("protores")
    assert set(defaults) == {"stem_filters", "stem_stride", "filters", "dilations", "kernel",
                             "layout", "head", "block"}
    assert defaults["filters"] == (24, 32, 48) and defaults["dilations"] == (1, 2, 4)
    assert encoder_defaults("conv4") == {"filters": 64}
    enc = build_encoder("protores", SMALL, **{**TINY, "filters": [4, 5, 6]})
    assert enc.output_shape == (None, (SMALL[0] - 2) // 2 * 6)


@pytest.mark.parametrize(
    "name, params, dim",
    [
        ("conv4", {}, 3 * 2 * 64),  # 51x40 -> 25x20 -> 12x10 -> 6x5 -> 3x2
        ("conv4", {"filters": 8}, 3 * 2 * 8),
        ("protores", {}, None),  # the defaults: checked against their own formula below
        ("protores", {**TINY, "layout": "temporal", "head": "avgpool"}, 24 * 6),  # 49 // 2
        ("protores", {**TINY, "layout": "image", "head": "avgpool"}, 24 * 40 * 6),
        ("protores", {**TINY, "layout": "temporal", "head": "global"}, 6),
        ("protores", {**TINY, "layout": "image", "head": "global"}, 6),
        ("protores", {**TINY, "stem_stride": 2}, 12 * 6),  # (51 - 3) // 2 + 1 = 25 -> 12
    ],
)
def test_output_dim_at_51_by_40(name, params, dim):
    enc = build_encoder(name, (51, 40), **params)
    if dim is None:
        d = encoder_defaults("protores")
        frames = (51 - 3) // d["stem_stride"] + 1
        width = 1 if d["layout"] == "temporal" else 40
        dim = (frames // 2 * width if d["head"] == "avgpool" else 1) * d["filters"][-1]
    out = enc(np.zeros((3, 51, 40), np.float32), training=False)
    assert tuple(out.shape) == (3, dim)
    assert enc.output_shape == (None, dim)


def test_conv4_is_sequential_and_protores_functional():
    conv4 = build_encoder("conv4", (51, 40), filters=4)
    protores = build_encoder("protores", (51, 40), **TINY)
    assert isinstance(conv4, keras.Sequential)
    assert isinstance(protores, keras.Model) and not isinstance(protores, keras.Sequential)
    assert len(_blocks(protores)) == 3


@pytest.mark.parametrize("layout", ["temporal", "image"])
@pytest.mark.parametrize("block", ["basic", "preact", "bottleneck"])
def test_every_block_and_layout_trains_one_step(block, layout):
    keras.utils.set_random_seed(1)
    head = "global" if block == "preact" else "avgpool"
    params = {**TINY, "layout": layout, "head": head, "block": block}
    enc = build_encoder("protores", SMALL, **params)
    assert all(isinstance(b, BLOCK_CLASSES[block]) for b in _blocks(enc))
    _train_one_step(enc)


def test_conv4_trains_one_step():
    keras.utils.set_random_seed(1)
    _train_one_step(build_encoder("conv4", (16, 16), filters=4))


def _train_one_step(enc):
    model = PrototypicalNetwork(enc)
    support, query = _episode(np.random.default_rng(0), shape=enc.input_shape[1:])
    emb = model.embed(tf.reshape(support, [-1, *enc.input_shape[1:]]))
    assert tuple(emb.shape) == (4, enc.output_shape[-1])
    before = [v.numpy().copy() for v in model.trainable_variables]
    optimizer = keras.optimizers.Adam(1e-2)
    with tf.GradientTape() as tape:
        loss, acc = model(support, query, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    assert np.isfinite(float(loss)) and 0.0 <= float(acc) <= 1.0
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    assert all(changed)


@pytest.mark.parametrize("block", ["basic", "preact", "bottleneck"])
def test_first_main_path_conv_receives_gradient(block):
    """The published block's second conv read the block input, orphaning conv1: not here."""
    keras.utils.set_random_seed(2)
    enc = build_encoder("protores", SMALL, **{**TINY, "block": block})
    model = PrototypicalNetwork(enc)
    support, query = _episode(np.random.default_rng(3))
    first_convs = [b.conv1.kernel for b in _blocks(enc)]
    with tf.GradientTape() as tape:
        loss, _ = model(support, query, training=True)
    grads = tape.gradient(loss, first_convs)
    for b, g in zip(_blocks(enc), grads):
        assert g is not None, f"{b.name}.conv1 is not connected to the loss"
        assert float(tf.reduce_sum(tf.abs(g))) > 0.0, f"{b.name}.conv1 gets zero gradient"


def test_image_layout_kernels_run_along_time_only():
    """Changing one MFCC coefficient moves only that coefficient's column of the embedding."""
    keras.utils.set_random_seed(4)
    enc = build_encoder("protores", SMALL, **{**TINY, "layout": "image"})
    x = np.random.default_rng(5).standard_normal((2, *SMALL)).astype(np.float32)
    x2 = x.copy()
    x2[:, :, 3] += 1.0
    frames, coeffs, channels = (SMALL[0] - 2) // 2, SMALL[1], TINY["filters"][-1]
    e1 = enc(x, training=False).numpy().reshape(2, frames, coeffs, channels)
    e2 = enc(x2, training=False).numpy().reshape(2, frames, coeffs, channels)
    moved = np.abs(e2 - e1).max(axis=(0, 1, 3))  # per coefficient
    assert moved[3] > 0
    assert np.all(np.delete(moved, 3) == 0)


@pytest.mark.parametrize("cls", [BasicBlock, PreActBlock, BottleneckBlock])
def test_block_shortcut_projects_only_when_width_changes(cls):
    same, wider = cls(4, kernel=3), cls(4, kernel=3)
    x = tf.zeros((1, 10, 1, 4))
    assert tuple(same(x).shape) == (1, 10, 1, 4)
    assert tuple(wider(tf.zeros((1, 10, 1, 3))).shape) == (1, 10, 1, 4)
    assert not same.project and wider.project
    assert len(wider.trainable_variables) > len(same.trainable_variables)
    # identity shortcut: a zeroed main path passes the input through
    if cls is PreActBlock:
        same.conv2.kernel.assign(tf.zeros_like(same.conv2.kernel))
        x = tf.random.normal((1, 10, 1, 4))
        np.testing.assert_allclose(same(x, training=False).numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize("cls", [BasicBlock, PreActBlock, BottleneckBlock])
def test_block_arguments_are_validated_and_kept(cls):
    with pytest.raises(ConfigError, match="time_axis=3"):
        cls(4, time_axis=3)
    with pytest.raises(ConfigError, match="dilation=0"):
        cls(4, dilation=0)
    block = cls(6, kernel=5, dilation=3, time_axis=2)
    assert tuple(block(tf.zeros((2, 1, 11, 3))).shape) == (2, 1, 11, 6)  # time on axis 2
    assert tuple(block.conv2.kernel.shape[:2]) == (1, 5)  # the temporal conv of every block
    clone = cls.from_config(block.get_config())
    assert (clone.filters, clone.kernel, clone.dilation, clone.time_axis) == (6, 5, 3, 2)


@pytest.mark.parametrize("block", ["basic", "preact", "bottleneck"])
def test_blocks_serialize_and_reload(block, tmp_path):
    keras.utils.set_random_seed(6)
    enc = build_encoder("protores", SMALL, **{**TINY, "block": block})
    path = tmp_path / f"{block}.keras"
    enc.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(7).standard_normal((3, *SMALL)).astype(np.float32)
    np.testing.assert_allclose(
        loaded(x, training=False).numpy(), enc(x, training=False).numpy(), rtol=1e-5, atol=1e-5
    )

"""Residual blocks of the ProtoRes encoder, each a reusable, serializable Keras layer.

Every block maps ``x [shape=(batch, height, width, c_in)]`` to ``[batch, height, width,
filters]`` with kernels of length ``kernel`` dilated by ``dilation`` along the time axis only
(``time_axis`` 1: kernel ``(kernel, 1)``; ``time_axis`` 2: kernel ``(1, kernel)``), so the same
block serves the image layout (``[time, coeff, c]``, time on axis 1) and the temporal layout
(``[1, time, c]``, coefficients as channels, time on axis 2).

All convolutions feeding a BatchNormalization have no bias (the BN shift replaces it). ``training``
is passed explicitly to every BatchNormalization.

Unlike the published ProtoRes block, whose second convolution reads the block *input* (leaving
the first conv/BN/ReLU connected to nothing), the main path here is the real chain: each
convolution reads the previous one's output. ``tests/test_encoders.py`` checks that the first
main-path convolution (``conv1`` in every block) receives gradient.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from kws_proto.encoders.params import positive_int
from kws_proto.errors import ConfigError

_PACKAGE = "kws_proto"


def along(n: int, time_axis: int) -> tuple[int, int]:
    """A 2-D kernel/stride/dilation of ``n`` along ``time_axis`` (1 or 2) and 1 across it."""
    return (n, 1) if time_axis == 1 else (1, n)


def _conv(filters: int, kernel: int, dilation: int = 1, time_axis: int = 1,
          name: str | None = None) -> layers.Conv2D:
    """A bias-free 'same' Conv2D of length ``kernel`` dilated along ``time_axis``."""
    return layers.Conv2D(
        filters,
        along(kernel, time_axis),
        padding="same",
        dilation_rate=along(dilation, time_axis),
        use_bias=False,
        name=name,
    )


class _ResidualBlock(layers.Layer):
    """Shared constructor, config and shape logic of the blocks below."""

    def __init__(self, filters: int, kernel: int = 9, dilation: int = 1, time_axis: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel = positive_int("kernel", kernel)
        self.dilation = positive_int("dilation", dilation)
        if time_axis not in (1, 2):
            raise ConfigError(f"time_axis={time_axis!r} must be 1 or 2")
        self.time_axis = time_axis
        self.project = False  # decided in build(): True when c_in != filters

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, kernel=self.kernel, dilation=self.dilation,
                      time_axis=self.time_axis)
        return config

    def _temporal_conv(self, filters: int, name: str) -> layers.Conv2D:
        return _conv(filters, self.kernel, self.dilation, self.time_axis, name=name)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    @staticmethod
    def _build_chain(chain, shape):
        """Build ``chain`` (layers applied in order) from ``shape``; return the output shape."""
        for layer in chain:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        return shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BasicBlock(_ResidualBlock):
    """Post-activation residual block of ProtoRes (the basic / identity block of ResNet).

    main: Conv2D(f, k, dilation) -> BN -> ReLU -> Conv2D(f, k, dilation) -> BN (k along time)
    shortcut: Conv2D(f, 1x1) -> BN -> ReLU when ``c_in != f`` (as in the published ProtoRes),
    otherwise the identity; output ReLU(main + shortcut).

    He et al. 2016, "Deep residual learning for image recognition" (arXiv 1512.03385); ProtoRes
    block wiring with the second conv reading the first (see module docstring).

    Parameters
    ----------
    filters : int
        Output channels ``f``.
    kernel : int
        Kernel length along time.
    dilation : int
        Dilation along time.
    time_axis : {1, 2}
        The spatial axis that is time.
    """

    def build(self, input_shape):
        self.conv1 = self._temporal_conv(self.filters, "conv1")
        self.bn1 = layers.BatchNormalization(name="bn1")
        self.conv2 = self._temporal_conv(self.filters, "conv2")
        self.bn2 = layers.BatchNormalization(name="bn2")
        self._build_chain([self.conv1, self.bn1, self.conv2, self.bn2], input_shape)
        self.project = input_shape[-1] != self.filters
        if self.project:
            self.shortcut_conv = _conv(self.filters, 1, name="shortcut_conv")
            self.shortcut_bn = layers.BatchNormalization(name="shortcut_bn")
            self._build_chain([self.shortcut_conv, self.shortcut_bn], input_shape)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)  # reads conv1's output
        shortcut = x
        if self.project:
            shortcut = ops.relu(self.shortcut_bn(self.shortcut_conv(x), training=training))
        return ops.relu(y + shortcut)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PreActBlock(_ResidualBlock):
    """Full pre-activation residual block.

    pre = ReLU(BN(x)); main: Conv2D(f, k, dilation) -> BN -> ReLU -> Conv2D(f, k, dilation);
    shortcut: Conv2D(f, 1x1) of ``pre`` when ``c_in != f``, else ``x``; output
    main + shortcut, no activation (a network of these blocks ends with its own BN -> ReLU).

    He et al. 2016, "Identity mappings in deep residual networks" (arXiv 1603.05027).

    Parameters
    ----------
    filters, kernel, dilation, time_axis : int
        As in :class:`BasicBlock`.
    """

    def build(self, input_shape):
        self.bn1 = layers.BatchNormalization(name="bn1")
        self.conv1 = self._temporal_conv(self.filters, "conv1")
        self.bn2 = layers.BatchNormalization(name="bn2")
        self.conv2 = self._temporal_conv(self.filters, "conv2")
        self._build_chain([self.bn1, self.conv1, self.bn2, self.conv2], input_shape)
        self.project = input_shape[-1] != self.filters
        if self.project:
            self.shortcut_conv = _conv(self.filters, 1, name="shortcut_conv")
            self.shortcut_conv.build(input_shape)
        self.built = True

    def call(self, x, training=None):
        pre = ops.relu(self.bn1(x, training=training))
        shortcut = self.shortcut_conv(pre) if self.project else x
        y = self.conv1(pre)
        y = self.conv2(ops.relu(self.bn2(y, training=training)))  # reads conv1's output
        return y + shortcut


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BottleneckBlock(_ResidualBlock):
    """Bottleneck residual block with a dilated temporal middle convolution.

    main: Conv2D(f/r, 1x1) -> BN -> ReLU -> Conv2D(f/r, k, dilation) -> BN -> ReLU ->
    Conv2D(f, 1x1) -> BN; shortcut: Conv2D(f, 1x1) -> BN when ``c_in != f``, else ``x``;
    output ReLU(main + shortcut).

    He et al. 2016, "Deep residual learning for image recognition" (arXiv 1512.03385), Fig. 5.
    ResNet reduces by r = 4; at ProtoRes widths (24-48) that leaves 6-12 channels, so the
    default here is r = 2.

    Parameters
    ----------
    filters, kernel, dilation, time_axis : int
        As in :class:`BasicBlock`.
    reduction : int
        Width reduction ``r`` of the inner convolutions (at least one channel).
    """

    def __init__(self, filters: int, kernel: int = 9, dilation: int = 1, time_axis: int = 1,
                 reduction: int = 2, **kwargs):
        super().__init__(filters, kernel, dilation, time_axis, **kwargs)
        self.reduction = positive_int("reduction", reduction)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(reduction=self.reduction)
        return config

    def build(self, input_shape):
        inner = max(1, self.filters // self.reduction)
        self.conv1 = _conv(inner, 1, name="conv1")
        self.bn1 = layers.BatchNormalization(name="bn1")
        self.conv2 = self._temporal_conv(inner, "conv2")
        self.bn2 = layers.BatchNormalization(name="bn2")
        self.conv3 = _conv(self.filters, 1, name="conv3")
        self.bn3 = layers.BatchNormalization(name="bn3")
        chain = [self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3]
        self._build_chain(chain, input_shape)
        self.project = input_shape[-1] != self.filters
        if self.project:
            self.shortcut_conv = _conv(self.filters, 1, name="shortcut_conv")
            self.shortcut_bn = layers.BatchNormalization(name="shortcut_bn")
            self._build_chain([self.shortcut_conv, self.shortcut_bn], input_shape)
        self.built = True

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = ops.relu(self.bn2(self.conv2(y), training=training))
        y = self.bn3(self.conv3(y), training=training)
        shortcut = x
        if self.project:
            shortcut = self.shortcut_bn(self.shortcut_conv(x), training=training)
        return ops.relu(y + shortcut)


BLOCKS = {"basic": BasicBlock, "preact": PreActBlock, "bottleneck": BottleneckBlock}

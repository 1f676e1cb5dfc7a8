"""The Sequential encoder: four Conv-BN-ReLU-MaxPool stages (the "C64" of few-shot learning)."""

from __future__ import annotations

from kws_proto.encoders.params import input_shape_2d, positive_int
from kws_proto.encoders.registry import register
from kws_proto.errors import ConfigError

N_STAGES = 4


@register("conv4")
def build_conv4(input_shape: tuple[int, int], filters: int = 64):
    """The Sequential encoder: 4 x [Conv2D 3x3 'same' -> BN -> ReLU -> MaxPool 2x2] -> Flatten.

    Snell, Swersky & Zemel 2017, "Prototypical networks for few-shot learning"
    (arXiv 1703.05175), the embedding of Vinyals et al. 2016; the ``keras.Sequential`` encoder of
    the TensorFlow 2 prototypical KWS design this package comes from (REFERENCE.md section 1).

    The MFCC are read as a picture ``[time, coeff, 1]``. Pooling is 'valid' (floor), so each
    stage halves both sizes rounding down: 51x40 -> 25x20 -> 12x10 -> 6x5 -> 3x2, a
    3*2*filters = 384-dim embedding at the default width.

    Parameters
    ----------
    input_shape : tuple of int
        ``(frames, n_mfcc)``; both must be at least 16 so four poolings leave one cell.
    filters : int
        Channels of every convolution (64 as published; tests use tiny widths).

    Returns
    -------
    encoder : keras.Sequential
        Maps ``x [shape=(batch, frames, n_mfcc)]`` to ``[shape=(batch, dim)]``,
        ``dim = (frames // 16) * (n_mfcc // 16) * filters``.
    """
    frames, n_mfcc = input_shape_2d(input_shape)
    filters = positive_int("filters", filters)
    if frames >> N_STAGES < 1 or n_mfcc >> N_STAGES < 1:
        raise ConfigError(
            f"conv4 input_shape=({frames}, {n_mfcc}) is too small: {N_STAGES} 2x2 poolings need "
            f"at least {2 ** N_STAGES} frames and {2 ** N_STAGES} coefficients"
        )
    import keras  # lazy: TensorFlow
    from keras import layers  # lazy: TensorFlow

    stack = [keras.Input(shape=(frames, n_mfcc)), layers.Reshape((frames, n_mfcc, 1))]
    # x: batch x frames x n_mfcc -> batch x frames x n_mfcc x 1
    for i in range(N_STAGES):
        stack += [
            layers.Conv2D(filters, 3, padding="same", name=f"conv{i + 1}"),
            layers.BatchNormalization(name=f"bn{i + 1}"),
            layers.ReLU(name=f"relu{i + 1}"),
            layers.MaxPooling2D(2, padding="valid", name=f"pool{i + 1}"),
        ]
    stack.append(layers.Flatten())  # batch x (frames//16 * n_mfcc//16 * filters)
    return keras.Sequential(stack, name="conv4")

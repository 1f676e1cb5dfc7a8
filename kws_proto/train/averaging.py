"""Weight averaging (``train.ema``): an exponential moving average of the trainable weights.

The optimizer steps the raw weights; the average is what validation scores and the run keeps.
The decay is warmed up as ``min(ema, (1 + t) / (10 + t))`` at step ``t``, as
``tf.train.ExponentialMovingAverage(num_updates=step)`` does.
"""

from __future__ import annotations

import contextlib


class WeightAverage:
    """The moving averages of ``variables`` (none when ``decay`` is 0).

    Create it inside the strategy's scope: its variables are mirrored like the weights.
    """

    def __init__(self, variables: list, decay: float):
        import tensorflow as tf  # lazy: TensorFlow

        self.decay = decay
        self.variables = list(variables)
        self.averages = [tf.Variable(tf.convert_to_tensor(v), trainable=False, name="ema")
                         for v in self.variables] if decay else []

    def __bool__(self) -> bool:
        return bool(self.averages)

    def update(self, step) -> None:
        """Move the averages towards the weights (after the optimizer's update at ``step``)."""
        import tensorflow as tf  # lazy: TensorFlow

        t = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))
        for a, v in zip(self.averages, self.variables):
            a.assign(decay * a + (1.0 - decay) * v)

    @contextlib.contextmanager
    def swapped(self):
        """Inside the block the weights hold the averages and vice versa; swapped back on exit.

        With no averages nothing happens.  Under a distribution strategy this runs in
        cross-replica context, where an assignment writes every replica's copy.
        """
        import tensorflow as tf  # lazy: TensorFlow

        def swap():
            for a, v in zip(self.averages, self.variables):
                raw = tf.identity(v)
                v.assign(a)
                a.assign(raw)

        swap()
        try:
            yield
        finally:
            swap()

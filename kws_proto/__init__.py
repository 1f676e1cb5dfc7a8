"""kws_proto: few-shot keyword spotting with prototypical networks (TensorFlow 2 / Keras 3)."""

__version__ = "0.1.0"

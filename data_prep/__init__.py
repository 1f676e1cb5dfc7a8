"""Dataset preparation: every source ends as a dataset folder read by :mod:`kws_proto.data.dataset`."""

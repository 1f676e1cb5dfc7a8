"""Datasets: the prepared-folder contract, caches, episodes, the tf.data feed, a dataset seen through one config."""

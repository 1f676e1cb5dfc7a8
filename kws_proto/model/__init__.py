"""The prototypical network, episode scoring, the embedding head, run directories, loading, the shipped encoder."""

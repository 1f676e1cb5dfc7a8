"""Episodic training: the GradientTape loop and its parts."""

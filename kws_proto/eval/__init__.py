"""Evaluation: fixed-episode scores, open set, the DTW baseline, comparisons, reports, plots, suites."""

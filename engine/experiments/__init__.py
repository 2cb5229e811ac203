"""Experiments: exposures of people to arms, outcomes credited to them, and the statistics of the report."""

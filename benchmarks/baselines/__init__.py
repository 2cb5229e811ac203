"""Earlier implementations kept as baselines for the benchmarks beside this folder (not run by `clickstream bench`)."""

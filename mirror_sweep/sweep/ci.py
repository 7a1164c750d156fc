"""The names of the CI methods of an across-seed mean (summaries.mean_ci computes them).

Names only, so that the command line can offer them without importing numpy (cli.py parses its
arguments before the heavy imports, see sweep/prepass.py).
"""

CI_METHODS = ("t", "bca", "percentile")
DEFAULT_CI = "t"

"""The analysis: metrics of reconstructions against the truth, the evaluation on held-out mocks
and its verdict, bulk flows, attractors and structures, the literature, and the reconstruction of
real catalogues.

Imports the methods, survey and universe wings, never :mod:`zoa_lib.book`.
"""

"""The survey: how a universe is observed. Selection and distance errors, sky frames,
distances and velocity estimators, real catalogues read and written, mock catalogues drawn,
gridded and stored in HDF5 shards.

Imports :mod:`zoa_lib.universe` (and the base modules), never a higher wing.
"""

"""The universe: cosmology, Gaussian and constrained initial conditions, 2LPT and particle-mesh
evolution, and the target fields (δ, φ, v) on periodic meshes and observer-centred cubes.

The lowest wing: it imports only :mod:`zoa_lib.config`, :mod:`zoa_lib.errors` and :mod:`zoa_lib.io`.
Units (docs/DESIGN.md): comoving lengths in Mpc/h, wavenumbers in h/Mpc, velocities in km/s,
φ in (km/s)².
"""

"""zoa_lib: the thin library behind the zoa paper book.

Reproduces Dupuy et al. (2025), *Revealing Hidden Cosmic Flows through the Zone of
Avoidance with Deep Learning*: simulated CF4-like mocks, a 3D V-Net predicting the
density and the gravitational potential, velocities from -grad(phi), and their
evaluation against classical reconstructions. See DESIGN.md for the map.
"""
__version__ = "0.1.0"

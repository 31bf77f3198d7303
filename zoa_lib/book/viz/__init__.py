"""Publication figures of the paper book (matplotlib): slices, scatter plots, spectra,
bulk flows, training curves and sky maps.

A package of seven modules: :mod:`.style` (errors, colours,
figures, the grid of a slice, the kinds of map and their norms), :mod:`.slices`,
:mod:`.statistics` (scatter, spectra, PDFs, bulk flows, structures, training curves),
:mod:`.skymaps` (sky axes and maps; the computation is :mod:`zoa_lib.survey.sky`),
:mod:`.catalogs` (a catalogue on the sky, its selection), :mod:`.selection` (a real catalogue and the
mocks that copy its selection, side by side) and :mod:`.structure_stats` (clusters and voids recovered
over the test mocks, :mod:`zoa_lib.analysis.structure_stats`).

Every function takes plain numpy arrays and draws with ``matplotlib.figure.Figure``
(never ``pyplot``, never ``plt.show``): nothing accumulates in pyplot's figure list, and
importing this module changes no global state. Figure-level functions (``figure_*``,
``sky_shell_map``, ``plot_catalog_sky``, ``plot_selection``, ``plot_loss_curves``)
return a :class:`~matplotlib.figure.Figure` (a subclass that Jupyter displays as PNG
when it is a cell's value, with no pyplot or inline backend needed); axes-level functions (``plot_*(ax, ...)``,
``sky_map``) draw on the axes they are given and return it (or the image they drew,
where said; ``ax.figure`` is its Figure). ``fig.savefig(path)`` writes a figure;
``display(fig)`` or myst-nb ``glue(name, fig)`` puts it in a page.

Conventions (docs/DESIGN.md)
---------------------------------
* Cube fields have array axes (0, 1, 2) = (SGX, SGY, SGZ), voxel ``i`` centred at
  ``x_i = -L/2 + (i + 0.5) L/N`` (Mpc/h), observer at the centre. Velocities are
  ``(..., 3)`` arrays (v_SGX, v_SGY, v_SGZ) in km/s; φ is in (km/s)².
* A 2D map ``m[i_a, i_b]`` keeps the cube's index order: its first index runs along the
  first in-plane axis (drawn horizontally), its second along the second one (vertically).
* Density is shown as 1 + δ on a logarithmic colour scale from 0.1 to 15; the potential
  as φ/c² × 10⁶ (c in km/s, so φ/c² is the dimensionless Newtonian potential of the
  paper, whose maps are in units of 10⁻⁶) from −6 to 6; velocity arrows are scaled so
  that the key arrow is 1000 km/s (Dupuy et al. 2025, main figure). The truth-vs-prediction
  figure (:func:`~zoa_lib.book.viz.slices.figure_truth_vs_prediction`) instead derives one scale for truth and
  prediction from the truth (:func:`~zoa_lib.book.viz.slices.truth_norm`), so that a run whose potential exceeds
  ±6 × 10⁻⁶ is not drawn saturated.
* Sky maps are Mollweide projections drawn on :func:`~zoa_lib.book.viz.skymaps.sky_axes`, in Galactic (l, b) or
  supergalactic (SGL, SGB) coordinates, with longitude 0 at the centre increasing to the
  LEFT, as astronomers draw the sky; the labels are placed at the longitudes they name.

Colours are colour-blind friendly: Okabe–Ito lines, perceptually uniform sequential maps
(magma, cividis) and ColorBrewer diverging maps (RdBu, PuOr).
"""

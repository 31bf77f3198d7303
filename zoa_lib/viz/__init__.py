"""Publication figures of the paper book (matplotlib): slices, scatter plots, spectra,
bulk flows, training curves and sky maps.

A package of seven modules, every name re-exported here: :mod:`.style` (errors, colours,
figures, the grid of a slice, the kinds of map and their norms), :mod:`.slices`,
:mod:`.statistics` (scatter, spectra, PDFs, bulk flows, structures, training curves),
:mod:`.skymaps` (sky axes and maps; the computation is :mod:`zoa_lib.sky`),
:mod:`.catalogs` (a catalogue on the sky, its selection), :mod:`.selection` (a real catalogue and the
mocks that copy its selection, side by side) and :mod:`.structure_stats` (clusters and voids recovered
over the test mocks, :mod:`zoa_lib.structure_stats`).

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
  figure (:func:`figure_truth_vs_prediction`) instead derives one scale for truth and
  prediction from the truth (:func:`truth_norm`), so that a run whose potential exceeds
  ±6 × 10⁻⁶ is not drawn saturated.
* Sky maps are Mollweide projections drawn on :func:`sky_axes`, in Galactic (l, b) or
  supergalactic (SGL, SGB) coordinates, with longitude 0 at the centre increasing to the
  LEFT, as astronomers draw the sky; the labels are placed at the longitudes they name.

Colours are colour-blind friendly: Okabe–Ito lines, perceptually uniform sequential maps
(magma, cividis) and ColorBrewer diverging maps (RdBu, PuOr).
"""
from __future__ import annotations

from ..grid import voxel_centres  # noqa: F401
from .style import (AXIS_NAMES, BookFigure, DENSITY_RANGE, KINDS, Kind, OKABE_ITO, POTENTIAL_DISPLAY_FACTOR,
                    POTENTIAL_RANGE, RESIDUAL_LABELS, SLAB, STYLE, VizError, _axis_index, _check_cube,
                    _identity, _kind, _robust_abs_max, box_extent, density_display, figure_png, kind_norm,
                    new_figure, plane_axes, potential_display, slab_average, style)  # noqa: F401
from .slices import (TRUTH_SCALE_PERCENTILE, _as_map, _extend, _quiver, figure_truth_vs_prediction,
                     plot_slice, truth_norm)  # noqa: F401
from .statistics import (ENGINE_LABELS, LR_COLUMNS, WINDOW_MARKERS, _line_with_band, _new_ax,
                         figure_engine_slabs, plot_bulk_flow, plot_bulk_flow_lcdm, plot_bulk_flow_published,
                         plot_density_pdfs, plot_engine_power, plot_loss_curves, plot_metric_vs_distance,
                         plot_pdf, plot_power_ratio, plot_scatter_density, plot_structure_recovery,
                         plot_velocity_bias_shells, read_history)  # noqa: F401
from .skymaps import (SKY_FRAMES, SkyError, _check_frame, _edges, _l_ticklabel, _sky_ax, _sky_frame,
                      figure_sky_shells, frame_to_galactic, galactic_to_frame, mark_structures,
                      mark_structures_slice, mark_zoa_slice, read_structures, sample_shell, sky_axes, sky_map,
                      sky_shell_map, sky_xy, zoa_band, zoa_slice_mask)  # noqa: F401
from ..sky import (_sky_convert, frame_unit_vectors, interpolate_cube, shell_correlations, sky_grid)  # noqa: F401
from .catalogs import (_check_catalog, plot_catalog_sky, plot_selection)  # noqa: F401
from .selection import (OBSERVED_COLOUR, figure_real_vs_mock, figure_real_vs_mock_sky, observed_sky_image,
                        plot_observed_sky)  # noqa: F401
from .structure_stats import figure_structure_statistics  # noqa: F401

__all__ = [
    "AXIS_NAMES", "DENSITY_RANGE", "POTENTIAL_RANGE", "POTENTIAL_DISPLAY_FACTOR", "SLAB", "STYLE", "OKABE_ITO",
    "VizError", "BookFigure", "style", "new_figure", "figure_png", "voxel_centres", "box_extent", "slab_average",
    "plane_axes",
    "density_display", "potential_display", "kind_norm", "truth_norm", "TRUTH_SCALE_PERCENTILE", "plot_slice",
    "figure_truth_vs_prediction",
    "plot_scatter_density", "plot_power_ratio", "plot_pdf", "ENGINE_LABELS", "figure_engine_slabs",
    "plot_engine_power", "plot_density_pdfs", "plot_velocity_bias_shells", "plot_bulk_flow", "plot_bulk_flow_lcdm",
    "plot_metric_vs_distance",
    "read_history", "plot_loss_curves", "SKY_FRAMES", "galactic_to_frame", "frame_to_galactic",
    "frame_unit_vectors", "sky_xy", "sky_axes", "sky_map", "zoa_band", "read_structures",
    "mark_structures", "sky_grid", "interpolate_cube", "sample_shell", "sky_shell_map", "figure_sky_shells",
    "plot_catalog_sky", "plot_selection", "observed_sky_image", "plot_observed_sky", "figure_real_vs_mock",
    "figure_real_vs_mock_sky", "mark_zoa_slice", "zoa_slice_mask", "figure_structure_statistics",
]

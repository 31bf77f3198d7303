"""The book: running the chapter notebooks, the landing page's scorecard and run information,
the time estimate, and what a reader sees (figures in :mod:`zoa_lib.book.viz`, 3D scenes, the
slice explorer).

The top wing: it may import every other wing; none imports it.
"""

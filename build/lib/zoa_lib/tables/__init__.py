"""The tables shipped with zoa (this folder is the package ``zoa_lib.tables`` of an installed zoa;
see README.md here and :func:`zoa_lib.io.paths.shipped`)."""

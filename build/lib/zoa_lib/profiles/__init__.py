"""The shipped profiles (this folder is the package ``zoa_lib.profiles`` of an installed zoa;
:func:`zoa_lib.config.profile_path` finds them through :func:`zoa_lib.io.paths.shipped`)."""

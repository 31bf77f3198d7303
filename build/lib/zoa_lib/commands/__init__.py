"""Sub-commands of the ``zoa`` CLI, one module each (``register(subparsers)`` and ``run(args)``);
the options they share are in :mod:`zoa_lib.commands.options`."""

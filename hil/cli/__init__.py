"""``z10`` subcommands that belong to the simulator (``z10 sim``, later ``z10 hil ...``).

They reach the ``z10`` command through the ``z10.commands`` entry-point group (see
pyproject.toml), so ``vehicle_io`` never imports ``hil``. Each module follows the
``vehicle_io.cli`` contract: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``, heavy
imports inside ``run``.
"""

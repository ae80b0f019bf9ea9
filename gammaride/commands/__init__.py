"""One module per ``gammaride`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``.

A module's docstring is its ``--help`` description and must end with an example.
"""

"""Command-line entry points (``tfqbnn-train``, ``tfqbnn-evaluate``, ``tfqbnn-sweep``, ``tfqbnn-export``).

Each module holds ``main(argv=None)``; ``scripts/*.py`` and the console scripts of setup.cfg call them.
Imports of the heavy parts (data, export) happen inside ``main``.
"""

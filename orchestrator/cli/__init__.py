"""The ``mathsynth`` command line (``app``) and its command groups. No pipeline logic."""

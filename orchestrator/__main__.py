"""``python -m orchestrator`` is the same as the ``mathsynth`` console script."""

from orchestrator.cli import main

if __name__ == "__main__":
    main()

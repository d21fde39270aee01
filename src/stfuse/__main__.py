"""Entry point of the ``stfuse`` console script and of ``python -m stfuse``."""

from stfuse.cli import main

if __name__ == "__main__":
    main()

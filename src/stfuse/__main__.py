"""Entry point of the ``stfuse`` console script and of ``python -m stfuse``.

``main()`` exits the process with the command's status (0 on success), so the console script's own
``sys.exit(main())`` never sees a return value.
"""

from stfuse.cli import main

if __name__ == "__main__":
    main()

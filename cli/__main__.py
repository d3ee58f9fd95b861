"""``python -m cli``: the ``qa`` command without the console script."""

from cli import main

raise SystemExit(main())

"""``python -m alignkit``: see ``alignkit.cli``."""

from alignkit.cli import main

raise SystemExit(main())

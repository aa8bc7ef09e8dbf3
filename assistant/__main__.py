"""``python -m assistant …`` — see assistant/cli.py."""

from .cli import main

raise SystemExit(main())

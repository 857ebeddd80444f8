"""`python -m switch`: the same as the `switch` command."""

from switch.cli import main

raise SystemExit(main())

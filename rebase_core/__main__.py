"""`python -m rebase_core <command> ...` — see `rebase_core/cli/`."""

from rebase_core.cli import main

raise SystemExit(main())

"""`python -m podwatch_cli ...` = `podwatch ...`."""

from podwatch_cli.app import main

raise SystemExit(main())

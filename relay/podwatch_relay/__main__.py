"""`python -m podwatch_relay replay FILE` | `python -m podwatch_relay watch`."""

from __future__ import annotations

from podwatch_relay.app import main

raise SystemExit(main())

"""The headless browser of the page's tests and benchmark: Debian's Chromium (apt package
`chromium`, `.ci/run` installs it) with the flags both use; nothing downloads a browser
(`playwright install` never runs). Here, not in tests/ or bench/, because both import `local`.

    with sync_playwright() as p:
        browser = p.chromium.launch(**launch_args())
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
#: no sandbox (root in a container), and nothing that talks to Google's servers on its own
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def missing() -> str | None:
    """Why the browser cannot start (it is not installed, and how to install it), or None."""
    if CHROMIUM.is_file():
        return None
    return f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)"


def launch_args() -> dict[str, Any]:
    """Playwright's `chromium.launch` arguments for the system browser."""
    return {"executable_path": str(CHROMIUM), "args": list(CHROMIUM_ARGS)}

"""Install the Debian packages a test folder starts, when they are missing.

`scripts/test` installs every package in `scripts/debian-packages.txt`
through `scripts/bootstrap`; this lets `pytest tests/render` (or any folder
whose conftest asks) work on a fresh machine without it.
"""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

log = logging.getLogger(__name__)

# Daemons Debian starts on install; the tests run their own copies.
STARTED_ON_INSTALL = ("postfix", "dovecot", "opendkim", "postsrsd", "rspamd", "knot")


def missing_packages(names: list[str]) -> list[str]:
    """The packages of `names` that dpkg does not list as installed."""
    missing = []
    for name in names:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if "install ok installed" not in done.stdout:
            missing.append(name)
    return missing


def ensure_packages(names: list[str]) -> None:
    """Install what is missing of `names` with apt-get (root only)."""
    missing = missing_packages(names)
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.fail(
            f"missing Debian packages: {' '.join(missing)}; run scripts/bootstrap "
            "as root (or scripts/test), or install them",
            pytrace=False,
        )
    log.info("packages: installing %s", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        check=True,
    )
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for service in STARTED_ON_INSTALL:
        subprocess.run(["service", service, "stop"], capture_output=True, check=False)

"""The package check that lets a test folder install what it starts."""

from pathlib import Path

from tests.dns.conftest import PACKAGES as DNS_PACKAGES
from tests.render.conftest import PACKAGES
from tests.servers.packages import missing_packages


def test_installed_and_unknown_packages_are_told_apart() -> None:
    assert missing_packages(["postfix", "mailbridge-no-such-package"]) == [
        "mailbridge-no-such-package"
    ]


def test_render_packages_are_in_the_bootstrap_list() -> None:
    """scripts/bootstrap and the render tests agree on what is needed."""
    listed = Path(__file__).resolve().parents[2] / "scripts/debian-packages.txt"
    names = {
        line.strip()
        for line in listed.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert set(PACKAGES) | set(DNS_PACKAGES) <= names

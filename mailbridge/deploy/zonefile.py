"""Zone fragments on disk: write atomically, read back, remove."""

from __future__ import annotations

import logging
from pathlib import Path

from mailbridge.fsutil import write_atomic

log = logging.getLogger(__name__)


def write_fragment(path: Path, text: str) -> None:
    """Write the fragment so that readers see the old or the new file, whole."""
    write_atomic(path, text.encode("utf-8"), 0o644)
    log.info("zonefile wrote path=%s bytes=%d", path, len(text))


def read_fragment(path: Path) -> str | None:
    """The fragment's text now, or None when the file is gone."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def remove_fragment(path: Path) -> None:
    path.unlink(missing_ok=True)
    log.info("zonefile removed path=%s", path)


def txt_in_fragment(text: str, origin: str, name: str) -> list[str]:
    """The TXT texts (strings joined) at `name` in a zone fragment.

    The fragment may lack SOA and NS records; it is parsed without the
    origin checks a full zone needs.
    """
    import dns.name
    import dns.rdatatype
    import dns.zone

    zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    node = zone.get_node(dns.name.from_text(name))
    if node is None:
        return []
    rdataset = node.get_rdataset(zone.rdclass, dns.rdatatype.TXT)
    if rdataset is None:
        return []
    return sorted(b"".join(rdata.strings).decode("utf-8") for rdata in rdataset)

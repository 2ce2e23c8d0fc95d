"""Tag-value lists (`v=DMARC1; p=reject`) of DKIM, DMARC, MTA-STS, TLS-RPT."""

from __future__ import annotations


def parse_tags(text: str) -> dict[str, str] | None:
    """`k=v; k2=v2` -> {"k": "v", "k2": "v2"}; None when not a tag list.

    RFC 6376 section 3.2 allows spaces around `;` and `=` and a trailing `;`.
    A repeated tag makes the list invalid.
    """
    tags: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name or name in tags:
            return None
        tags[name] = "".join(value.split())
    return tags

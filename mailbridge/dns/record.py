"""One DNS record set that a domain needs, with the reason it exists."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# RFC 1035 section 3.3: a <character-string> holds at most 255 octets.
TXT_STRING_MAX = 255


class RecordType(enum.StrEnum):
    """The record types mailbridge publishes (and the zone apex types)."""

    A = "A"
    AAAA = "AAAA"
    CAA = "CAA"
    CNAME = "CNAME"
    MX = "MX"
    NS = "NS"
    SOA = "SOA"
    SRV = "SRV"
    TLSA = "TLSA"
    TXT = "TXT"


class Level(enum.StrEnum):
    """How much a record matters for mail to reach Gmail and be trusted."""

    REQUIRED = "required"
    RECOMMENDED = "recommended"
    OPTIONAL = "optional"


def split_txt(text: str) -> list[str]:
    """Cut one logical TXT text into strings of at most 255 octets.

    RFC 7208 section 3.3 and RFC 6376 section 3.6.2.2: receivers join the
    strings of one record without spaces, so the cut may fall anywhere.
    The text is encoded as UTF-8; a multi-byte character is never split.
    """
    strings: list[str] = []
    current = ""
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > TXT_STRING_MAX:
            strings.append(current)
            current, size = "", 0
        current += char
        size += width
    strings.append(current)
    return strings


def quote_txt(strings: Iterable[str]) -> str:
    """Presentation format of TXT strings: each quoted, `"` and `\\` escaped.

    Bytes outside printable ASCII are written as `\\DDD` (RFC 1035 5.1).
    """
    parts = []
    for text in strings:
        out = []
        for byte in text.encode("utf-8"):
            char = chr(byte)
            if char in '"\\':
                out.append("\\" + char)
            elif 0x20 <= byte < 0x7F:
                out.append(char)
            else:
                out.append(f"\\{byte:03d}")
        parts.append('"' + "".join(out) + '"')
    return " ".join(parts)


def unquote_txt(rdata: str) -> list[str]:
    """The strings of a quoted TXT rdata: the inverse of `quote_txt`."""
    strings: list[str] = []
    i = 0
    while i < len(rdata):
        if rdata[i] == " ":
            i += 1
            continue
        if rdata[i] != '"':
            raise ValueError(f"TXT rdata must be quoted strings: {rdata!r}")
        raw = bytearray()
        i += 1
        while rdata[i] != '"':
            if rdata[i] == "\\" and rdata[i + 1 : i + 4].isdigit():
                raw.append(int(rdata[i + 1 : i + 4]))
                i += 4
                continue
            if rdata[i] == "\\":
                i += 1
            raw.extend(rdata[i].encode("utf-8"))
            i += 1
        strings.append(raw.decode("utf-8"))
        i += 1
    return strings


def absolute(name: str) -> str:
    """A name as an absolute rdata target: `mx1.example.com.`; `.` stays."""
    return name if name.endswith(".") else name + "."


@dataclass(frozen=True)
class Record:
    """A record set: every value of one type at one name.

    `name` is the owner name without a trailing dot. `values` are the rdata
    texts in presentation format, ready for a zone file or an RFC 2136
    update: names inside them are absolute (trailing dot), and a TXT value is
    one record of quoted strings of at most 255 octets each, for example
    `"v=spf1 mx -all"`. `reason` says in one line why the record exists.
    A `placeholder` record stands in for data that is missing (a DKIM key
    not generated yet) and must not be published as it is.
    """

    name: str
    type: RecordType
    ttl: int
    values: tuple[str, ...]
    reason: str
    level: Level
    placeholder: bool = False

    @classmethod
    def txt(
        cls,
        name: str,
        ttl: int,
        text: str,
        reason: str,
        level: Level,
        *,
        placeholder: bool = False,
    ) -> Record:
        """A TXT record holding one logical text, split into strings."""
        rdata = quote_txt(split_txt(text))
        return cls(name, RecordType.TXT, ttl, (rdata,), reason, level, placeholder)

    def strings(self) -> list[list[str]]:
        """For TXT: the unquoted strings of each value."""
        self._need_txt()
        return [unquote_txt(value) for value in self.values]

    def texts(self) -> list[str]:
        """For TXT: each value's strings joined, as a receiver reads them."""
        return ["".join(parts) for parts in self.strings()]

    def to_text(self) -> str:
        """Zone-file lines with absolute owner names, one per value."""
        owner = absolute(self.name)
        return "\n".join(
            f"{owner} {self.ttl} IN {self.type} {value}" for value in self.values
        )

    def to_json(self) -> dict[str, object]:
        """A plain dict for machines; TXT records also carry their texts."""
        data: dict[str, object] = {
            "name": self.name,
            "type": str(self.type),
            "ttl": self.ttl,
            "values": list(self.values),
            "level": str(self.level),
            "reason": self.reason,
            "placeholder": self.placeholder,
        }
        if self.type == RecordType.TXT:
            data["texts"] = self.texts()
        return data

    def _need_txt(self) -> None:
        if self.type != RecordType.TXT:
            raise TypeError(f"{self.name} {self.type} is not a TXT record")


def records_to_json(records: Sequence[Record]) -> list[dict[str, object]]:
    """The whole set as a list of plain dicts, in the set's order."""
    return [record.to_json() for record in records]

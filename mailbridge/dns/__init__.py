"""DNS records of a domain: SPF, DKIM, DMARC, MTA-STS and more, and zone output."""

from mailbridge.dns.record import Level, Record, RecordType
from mailbridge.dns.records import build_records
from mailbridge.dns.spf import SPF_LOOKUP_LIMIT, spf_lookup_count

__all__ = [
    "SPF_LOOKUP_LIMIT",
    "Level",
    "Record",
    "RecordType",
    "build_records",
    "spf_lookup_count",
]

"""Pulumi components of mailbridge: a domain, its DKIM keys, DNS and mail host.

Type tokens follow `mailbridge:<area>:<Type>`; every child has
`parent=self`, and outputs are registered last.
"""

from components.dkim import DkimKey, DkimKeyArgs
from components.dns import DnsRecords, DnsRecordsArgs
from components.domain import MailDomain, MailDomainArgs
from components.host import MailHost, MailHostArgs

__all__ = [
    "DkimKey",
    "DkimKeyArgs",
    "DnsRecords",
    "DnsRecordsArgs",
    "MailDomain",
    "MailDomainArgs",
    "MailHost",
    "MailHostArgs",
]

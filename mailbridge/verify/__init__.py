"""Live checks of a domain: DNS, TLS and ports, compared with its spec."""

from mailbridge.verify.findings import Finding, Report, Status
from mailbridge.verify.options import VerifyOptions

__all__ = ["Finding", "Report", "Status", "VerifyOptions"]

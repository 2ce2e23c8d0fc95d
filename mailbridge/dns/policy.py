"""Texts of the mail policy records: DMARC, MTA-STS and TLS-RPT."""

from __future__ import annotations

import hashlib

from mailbridge.spec.models import DMARC, TLSRPT, DomainSpec

# RFC 8461 section 3.1: the id is 1 to 32 letters and digits.
MTA_STS_ID_LENGTH = 32


def dmarc_text(dmarc: DMARC) -> str:
    """The `v=DMARC1` record text (RFC 7489 section 6.3).

    Tags equal to their RFC defaults (pct=100, adkim=r, aspf=r, sp=p) are
    left out, so the record shows only the choices that were made.
    """
    tags = ["v=DMARC1", f"p={dmarc.policy}"]
    if dmarc.subdomain_policy is not None and dmarc.subdomain_policy != dmarc.policy:
        tags.append(f"sp={dmarc.subdomain_policy}")
    if dmarc.pct != 100:
        tags.append(f"pct={dmarc.pct}")
    if dmarc.rua:
        tags.append("rua=" + ",".join(dmarc.rua))
    if dmarc.ruf:
        tags.append("ruf=" + ",".join(dmarc.ruf))
    if dmarc.adkim != "r":
        tags.append(f"adkim={dmarc.adkim}")
    if dmarc.aspf != "r":
        tags.append(f"aspf={dmarc.aspf}")
    return "; ".join(tags)


def no_mail_dmarc_text() -> str:
    """DMARC for a name that never sends: reject whatever claims it."""
    return "v=DMARC1; p=reject"


def mta_sts_policy(spec: DomainSpec) -> str:
    """The policy file served at `https://mta-sts.<domain>/.well-known/mta-sts.txt`.

    RFC 8461 section 3.2: `key: value` lines ending in CRLF, one `mx:` line
    per MX host that senders may deliver to over TLS.
    """
    if spec.mta_sts is None:
        raise ValueError(f"{spec.domain} has no mta_sts section")
    lines = ["version: STSv1", f"mode: {spec.mta_sts.mode}"]
    hosts: list[str] = []
    for mx in sorted(spec.mx_hosts, key=lambda m: (m.priority, m.host)):
        if mx.host not in hosts:
            hosts.append(mx.host)
    lines.extend(f"mx: {host}" for host in hosts)
    lines.append(f"max_age: {spec.mta_sts.max_age}")
    return "".join(line + "\r\n" for line in lines)


def mta_sts_id(policy: str) -> str:
    """The `id=` of the `_mta-sts` record: a digest of the policy text.

    Senders fetch the policy again only when the id changes (RFC 8461
    section 3.3), so it is derived from the exact text: it changes exactly
    when the policy does.
    """
    return hashlib.sha256(policy.encode("utf-8")).hexdigest()[:MTA_STS_ID_LENGTH]


def mta_sts_text(spec: DomainSpec) -> str:
    """The `v=STSv1; id=...` text of the `_mta-sts` record."""
    return f"v=STSv1; id={mta_sts_id(mta_sts_policy(spec))}"


def tls_rpt_text(tls_rpt: TLSRPT) -> str:
    """The `v=TLSRPTv1` record text (RFC 8460 section 3)."""
    return "v=TLSRPTv1; rua=" + ",".join(tls_rpt.rua)

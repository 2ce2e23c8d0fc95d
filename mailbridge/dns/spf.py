"""The domain's one SPF record (RFC 7208) and its DNS lookup count."""

from __future__ import annotations

import ipaddress
import logging

from mailbridge.errors import InputError, Problem
from mailbridge.spec.models import SPF, DomainSpec

log = logging.getLogger(__name__)

# RFC 7208 section 4.6.4: more terms that cause DNS lookups make a permerror.
SPF_LOOKUP_LIMIT = 10
# RFC 7208 section 3.4: answers over 512 octets may not fit in UDP.
SPF_ADVISED_LENGTH = 450


def spf_lookup_count(spf: SPF) -> int:
    """How many DNS-querying terms the record has (RFC 7208 section 4.6.4).

    include, a, mx, ptr, exists and the redirect modifier count one each;
    ip4, ip6 and all count nothing, and so do the mail host's addresses,
    which are written as ip4/ip6. Nested includes are not followed here:
    their own terms count too once a receiver resolves them.
    """
    count = len(spf.include) + len(spf.a) + len(spf.mx) + len(spf.exists)
    if spf.ptr:
        count += 1
    if spf.redirect is not None:
        count += 1
    return count


def _network_term(kind: str, network: str) -> str:
    net = ipaddress.ip_network(network, strict=False)
    if net.num_addresses == 1:
        return f"{kind}:{net.network_address}"
    return f"{kind}:{net}"


def spf_terms(spec: DomainSpec) -> list[str]:
    """The record's terms after `v=spf1`, in a stable order.

    Address terms come first (no lookups, so a receiver matches the mail
    host at once), then a, mx, ptr, exists, include, and last either the
    `all` mechanism or the `redirect=` modifier: RFC 7208 section 6.1 makes
    a redirect dead when `all` is present, so they never appear together.
    """
    spf = spec.spf
    ip4 = list(spf.ip4)
    ip6 = list(spf.ip6)
    if spf.mail_host:
        ip4 = [*spec.mail_host.ipv4, *ip4]
        ip6 = [*spec.mail_host.ipv6, *ip6]
    terms: list[str] = []
    for kind, networks in (("ip4", ip4), ("ip6", ip6)):
        for network in networks:
            term = _network_term(kind, network)
            if term not in terms:
                terms.append(term)
    terms.extend(f"a:{name}" for name in spf.a)
    terms.extend(f"mx:{name}" for name in spf.mx)
    if spf.ptr:
        terms.append("ptr")
    terms.extend(f"exists:{domain}" for domain in spf.exists)
    terms.extend(f"include:{name}" for name in spf.include)
    if spf.redirect is not None:
        terms.append(f"redirect={spf.redirect}")
    else:
        terms.append(spf.all)
    return terms


def spf_problems(spec: DomainSpec) -> list[Problem]:
    """What makes the spec's SPF record break at receivers."""
    problems: list[Problem] = []
    count = spf_lookup_count(spec.spf)
    if count > SPF_LOOKUP_LIMIT:
        problems.append(
            Problem(
                f"the SPF record of {spec.domain} needs {count} DNS lookups; "
                f"receivers stop at {SPF_LOOKUP_LIMIT} and fail every message "
                "(RFC 7208 section 4.6.4)",
                path=("spf",),
                found=f"{count} lookup terms (include, a, mx, ptr, exists, redirect)",
                expected=f"at most {SPF_LOOKUP_LIMIT}",
                fix="replace a and mx terms by ip4/ip6 networks, or drop "
                "includes of services that do not send for this domain",
                rule="spf-lookups",
            )
        )
    return problems


def spf_text(spec: DomainSpec) -> str:
    """The complete `v=spf1 ...` text; InputError when it would not work."""
    problems = spf_problems(spec)
    if problems:
        raise InputError(problems)
    text = " ".join(["v=spf1", *spf_terms(spec)])
    if len(text) > SPF_ADVISED_LENGTH:
        log.warning(
            "spf domain=%s length=%d over the advised %d octets (RFC 7208 3.4)",
            spec.domain,
            len(text),
            SPF_ADVISED_LENGTH,
        )
    return text


def mail_host_spf_text(spec: DomainSpec) -> str:
    """SPF for a name that only the mail host sends from (the SRS domain)."""
    host = spec.mail_host
    terms = [_network_term("ip4", ip) for ip in host.ipv4]
    terms.extend(_network_term("ip6", ip) for ip in host.ipv6)
    if not terms:
        terms.append(f"a:{host.hostname}")
    return " ".join(["v=spf1", *terms, "-all"])


def no_mail_spf_text() -> str:
    """SPF for a name that never sends mail: every sender fails."""
    return "v=spf1 -all"

"""The specs the render tests use: two domains on two hosts, built in code.

The loops below are built by hand past the policy checks (the loader would
not stop them; the routing checks would), to show what Postfix does.
"""

from __future__ import annotations

from mailbridge.spec.models import DomainSpec

COM: dict[str, object] = {
    "version": 1,
    "domain": "example.com",
    "mail_host": {"hostname": "mx1.example.com", "ipv4": ["203.0.113.10"]},
    "mailboxes": [
        {
            "address": "alice@example.com",
            "password": "secret:alice-password",
            "quota_mb": 50,
        },
        {"address": "bob@example.com", "password": "secret:bob-password"},
        {
            "address": "carol@example.com",
            "password": "secret:carol-password",
            "quota_mb": 1,
        },
    ],
    "forwarders": [
        {"address": "sales@example.com", "to": ["sales.team@gmail.com"]},
        {
            "address": "alice@example.com",
            "to": ["alice@example.com", "alice.example@gmail.com"],
        },
        {"address": "*@example.com", "to": ["owner@gmail.com"]},
        {"address": "loop-a@example.com", "to": ["loop-b@example.com"]},
        {"address": "loop-b@example.com", "to": ["loop-a@example.com"]},
        {"address": "ping@example.com", "to": ["pong@example.net"]},
    ],
    # RSA and Ed25519 (RFC 8463) both sign; ARC seals with the first.
    "dkim": {
        "selectors": [
            {"name": "s2026a", "algorithm": "rsa"},
            {"name": "s2026e", "algorithm": "ed25519"},
        ]
    },
    "srs": {"secrets": ["secret:srs-new", "secret:srs-old"]},
}

NET: dict[str, object] = {
    "version": 1,
    "domain": "example.net",
    "mail_host": {"hostname": "mail.example.net", "ipv4": ["198.51.100.25"]},
    "forwarders": [{"address": "pong@example.net", "to": ["ping@example.com"]}],
}


def spec(data: dict[str, object]) -> DomainSpec:
    return DomainSpec.model_validate(data)

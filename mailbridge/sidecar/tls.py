"""TLS for every connection: verified chain and name, optional CA and pin."""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl

from .errors import ConfigError, NetworkError, TLSVerifyError


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """System CAs plus `ca_file`; host names and chains are always checked."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise ConfigError(
                f"ca_file {ca_file} cannot be used: {reason}; it must be a "
                "readable file of PEM certificates"
            ) from err
    return context


def normalize_fingerprint(text: str) -> str:
    return text.replace(":", "").replace(" ", "").lower()


def wrap(
    sock: socket.socket,
    host: str,
    *,
    ca_file: str | None,
    fingerprint: str | None,
) -> ssl.SSLSocket:
    """Handshake on `sock`; a failed check raises TLSVerifyError."""
    try:
        context = client_context(ca_file)
    except ConfigError:
        sock.close()
        raise
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as err:
        sock.close()
        raise TLSVerifyError(
            f"tls host={host} certificate rejected: {err.verify_message}"
        ) from err
    except (ssl.SSLError, OSError) as err:
        sock.close()
        raise NetworkError(f"tls host={host} handshake failed: {err}") from err
    if fingerprint is not None:
        check_pin(tls, host, fingerprint)
    return tls


def check_pin(tls: ssl.SSLSocket, host: str, fingerprint: str) -> None:
    """Compare the SHA-256 of the server's certificate with the pinned one."""
    der = tls.getpeercert(binary_form=True) or b""
    actual = hashlib.sha256(der).hexdigest()
    if not hmac.compare_digest(actual, normalize_fingerprint(fingerprint)):
        tls.close()
        raise TLSVerifyError(
            f"tls host={host} certificate fingerprint {actual} "
            "does not match the pinned fingerprint"
        )

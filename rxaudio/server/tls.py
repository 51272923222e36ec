"""HTTPS for ``rxaudio serve --certfile F --keyfile F``: one checked :class:`ssl.SSLContext`.

Browsers give the microphone only to secure contexts (HTTPS, or ``localhost``), so a server
reached by any other name needs TLS, here or at a reverse proxy (``docs/deploy.md``).
:func:`server_context` loads the certificate and key once, at start-up, and says in one line
what is wrong with them: a file that is missing or unreadable, a file that is not PEM, a key
that does not match the certificate, an encrypted key, a certificate that expired or is not
valid yet. Every process of a server calls it with the same files.

Only :mod:`ssl` (and no package beyond the standard library): the certificate's validity
dates are read from its DER form by :func:`validity`, a few lines of ASN.1, because the
standard library decodes certificates only for peers and CAs.
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
import time
from datetime import UTC, datetime

from ..errors import ConfigError

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL
)
_PEM_KEY = re.compile(rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----")


def _read(path: str, flag: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(
            f"serve: {flag} {path}: cannot read it ({exc.strerror or exc}); give the {what}"
        ) from None


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """The DER element at ``pos``: (tag, start of its value, end of its value)."""
    tag = der[pos]
    n = der[pos + 1]
    pos += 2
    if n & 0x80:  # long form: the next (n & 0x7F) bytes are the length
        k = n & 0x7F
        if not 1 <= k <= 4:
            raise ValueError("bad DER length")
        n = int.from_bytes(der[pos : pos + k], "big")
        pos += k
    if pos + n > len(der):
        raise ValueError("DER element runs past the end")
    return tag, pos, pos + n


def _time(tag: int, value: bytes) -> float:
    text = value.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ (RFC 5280: years 50-99 are 19xx)
        yy = int(text[:2])
        text = f"{1900 + yy if yy >= 50 else 2000 + yy}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("not a time")
    when = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    return when.timestamp()


def validity(der: bytes) -> tuple[float, float]:
    """A DER certificate's ``notBefore`` and ``notAfter``, as Unix times (RFC 5280 4.1)."""
    _, cert, _ = _tlv(der, 0)  # Certificate ::= SEQUENCE { tbsCertificate, ... }
    _, pos, _ = _tlv(der, cert)  # TBSCertificate ::= SEQUENCE {
    tag, _, end = _tlv(der, pos)
    if tag == 0xA0:  # [0] version (absent in v1 certificates)
        tag, _, end = _tlv(der, end)
    for _ in range(2):  # after serialNumber: signature, issuer
        tag, _, end = _tlv(der, end)
    tag, start, _ = _tlv(der, end)  # validity ::= SEQUENCE { notBefore, notAfter }
    if tag != 0x30:
        raise ValueError("no validity")
    t1, s1, e1 = _tlv(der, start)
    t2, s2, e2 = _tlv(der, e1)
    return _time(t1, der[s1:e1]), _time(t2, der[s2:e2])


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def server_context(certfile: str, keyfile: str, *, now: float | None = None) -> ssl.SSLContext:
    """The TLS context of a server with this certificate (chain) and key, both PEM files.

    Parameters
    ----------
    certfile
        The certificate in PEM, the server's own first, then any intermediates (certbot's
        ``fullchain.pem``).
    keyfile
        Its private key in PEM, unencrypted (a server starting unattended has nobody to type
        a passphrase).
    now
        The time to check the validity dates against (Unix seconds; default: now).

    Raises
    ------
    ConfigError
        One line naming the file, what is wrong and the fix.
    """
    cert = _read(certfile, "--certfile", "certificate's PEM file (e.g. fullchain.pem)")
    key = _read(keyfile, "--keyfile", "private key's PEM file (e.g. privkey.pem)")
    m = _PEM_CERT.search(cert)
    if m is None:
        raise ConfigError(
            f"serve: --certfile {certfile} is not a PEM certificate (no '-----BEGIN "
            "CERTIFICATE-----' line); give the PEM file, or convert a DER one: openssl x509 "
            f"-inform der -in {certfile} -out cert.pem"
        )
    try:
        der = base64.b64decode(m.group(1), validate=False)
        not_before, not_after = validity(der)
    except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
        raise ConfigError(
            f"serve: --certfile {certfile}: its first certificate cannot be decoded (a damaged "
            "file?); give the certificate as the issuer sent it"
        ) from None
    k = _PEM_KEY.search(key)
    if k is None:
        raise ConfigError(
            f"serve: --keyfile {keyfile} is not a PEM private key (no '-----BEGIN ... PRIVATE "
            "KEY-----' line); give the key the certificate was made with, in PEM"
        )
    if k.group(1) == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in key:
        raise ConfigError(
            f"serve: --keyfile {keyfile} is encrypted with a passphrase; give an unencrypted "
            f"copy, readable only by the server's user: openssl pkey -in {keyfile} -out key.pem"
        )
    t = time.time() if now is None else now
    if t < not_before:
        raise ConfigError(
            f"serve: --certfile {certfile} is not valid until {_day(not_before)}; check the "
            "machine's clock, or give a certificate valid now"
        )
    if t > not_after:
        raise ConfigError(
            f"serve: --certfile {certfile} expired on {_day(not_after)}; renew it (certbot "
            "renew, see docs/deploy.md) or make a new one"
        )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # a password callback, so that an encrypted key never waits for a passphrase on a tty
        ctx.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        # the same kind of key (KEY_VALUES_MISMATCH) or another kind: an EC key for an RSA
        # certificate leaves the key's slot without one (NO_CERTIFICATE_ASSIGNED)
        if any(r in reason for r in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED")):
            raise ConfigError(
                f"serve: --keyfile {keyfile} does not match the certificate in {certfile}; "
                "give the key the certificate was made with"
            ) from None
        raise ConfigError(
            f"serve: --certfile {certfile} / --keyfile {keyfile}: TLS cannot use them "
            f"({reason}); give a PEM certificate and its unencrypted PEM key"
        ) from None
    except OSError as exc:  # read between our look and this one
        raise ConfigError(
            f"serve: --certfile {certfile} / --keyfile {keyfile}: cannot read them "
            f"({exc.strerror or exc})"
        ) from None
    return ctx

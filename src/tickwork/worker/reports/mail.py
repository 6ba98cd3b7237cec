"""Sending a report by e-mail over SMTP.

``smtp://`` is plain SMTP, ``smtp+starttls://`` upgrades with STARTTLS (required, the
certificate verified), ``smtps://`` is TLS from the first byte; user and password in the URL
log in. One message goes to every address of ``send_to`` at once: a team's report is one mail
each member sees addressed to the team.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal
from urllib.parse import unquote, urlsplit

from tickwork import __version__

Security = Literal["none", "starttls", "tls"]
_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str
    port: int = 25
    sender: str = "tickwork@localhost"
    security: Security = "none"
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, *, sender: str) -> SmtpOptions:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError("an SMTP URL is smtp://, smtp+starttls:// or smtps://host[:port]")
        security, default_port = _SCHEMES[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            sender=sender,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """What the server said: refused addresses (with its answer), or why nothing was sent."""

    refused: dict[str, str]
    error: str | None = None  # the server could not be reached or spoken to
    rejected: str | None = None  # the server answered the message with a refusal


def message(options: SmtpOptions, to: list[str], subject: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = options.sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=options.sender.rpartition("@")[2] or None)
    mail["X-Mailer"] = f"tickwork/{__version__}"
    mail.set_content(body)
    return mail


def send(options: SmtpOptions, mail: EmailMessage, to: list[str], *, timeout_s: float) -> Sent:
    try:
        with _connect(options, timeout_s) as smtp:
            if options.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if options.username is not None:
                smtp.login(options.username, options.password or "")
            refused = smtp.send_message(mail, from_addr=options.sender, to_addrs=to)
    except smtplib.SMTPRecipientsRefused as exc:
        return Sent(refused={k: _answer(v) for k, v in exc.recipients.items()})
    except smtplib.SMTPResponseException as exc:
        return Sent(refused={}, rejected=f"{exc.smtp_code} {_text(exc.smtp_error)}")
    except (smtplib.SMTPException, OSError, ValueError) as exc:  # ValueError: an unsendable address
        return Sent(refused={}, error=f"{type(exc).__name__}: {exc}")
    return Sent(refused={k: _answer(v) for k, v in refused.items()})


def _connect(options: SmtpOptions, timeout_s: float) -> smtplib.SMTP:
    if options.security == "tls":
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(options.host, options.port, timeout=timeout_s, context=context)
    return smtplib.SMTP(options.host, options.port, timeout=timeout_s)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _answer(value: tuple[int, bytes]) -> str:
    return f"{value[0]} {_text(value[1])}"

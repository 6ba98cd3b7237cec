"""Small form readers (multipart/form-data, RFC 7578; urlencoded) for the one operation that
takes a form.

Starlette's form parser needs the python-multipart package; the load-test upload needs only
named parts read whole from a body the size limit has already bounded, so this reader keeps
the dependency out. It is byte-exact: a part's content is returned as sent (a k6 .tar
archive survives), and anything malformed is a ValidationError, never an exception of its own.
"""

from __future__ import annotations

from email.message import Message
from email.utils import collapse_rfc2231_value
from urllib.parse import parse_qsl

from tickwork.errors import Problem, ValidationError

MAX_PARTS = 64


def _invalid(message: str) -> ValidationError:
    return ValidationError([Problem("invalid_multipart", None, message)], message)


def _params(header: str, value: str) -> Message:
    # email's header-parameter parser handles quoting and RFC 2231 (name*=utf-8''...).
    holder = Message()
    holder[header] = value
    return holder


def boundary_of(content_type: str) -> str:
    boundary = _params("content-type", content_type).get_param("boundary")
    text = collapse_rfc2231_value(boundary) if boundary else ""
    if not text or len(text) > 200:
        raise _invalid("The multipart/form-data body has no usable boundary.")
    return text


def parse_form_data(content_type: str, body: bytes) -> dict[str, bytes]:
    """Field name -> content for every part of ``body`` (the first of repeated names)."""
    delimiter = b"\r\n--" + boundary_of(content_type).encode("latin-1", "replace")
    segments = (b"\r\n" + body).split(delimiter)
    if len(segments) < 3 or not segments[-1].startswith(b"--"):
        raise _invalid("The multipart/form-data body is not terminated by its boundary.")
    parts = segments[1:-1]
    if len(parts) > MAX_PARTS:
        raise _invalid(f"The multipart/form-data body has more than {MAX_PARTS} parts.")
    fields: dict[str, bytes] = {}
    for part in parts:
        head, separator, content = part.partition(b"\r\n\r\n")
        if not separator or not head.lstrip(b" \t").startswith(b"\r\n"):
            raise _invalid("A part of the multipart/form-data body has no header block.")
        name = _field_name(head)
        fields.setdefault(name, content)
    return fields


def _field_name(head: bytes) -> str:
    try:
        lines = head.decode("utf-8").split("\r\n")
    except UnicodeDecodeError as exc:
        raise _invalid("A part's headers are not UTF-8 text.") from exc
    for line in lines:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == "content-disposition":
            disposition = _params("content-disposition", value.strip())
            if disposition.get_content_disposition() != "form-data":
                break
            name = disposition.get_param("name", header="content-disposition")
            text = collapse_rfc2231_value(name) if name else ""
            if text:
                return text
            break
    raise _invalid("A part has no Content-Disposition: form-data header with a name.")


def parse_urlencoded(body: bytes) -> dict[str, bytes]:
    """Field name -> value of an application/x-www-form-urlencoded body (first of repeats)."""
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARTS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid("The application/x-www-form-urlencoded body is malformed.") from exc
    fields: dict[str, bytes] = {}
    for name, value in pairs:
        fields.setdefault(name, value.encode())
    return fields

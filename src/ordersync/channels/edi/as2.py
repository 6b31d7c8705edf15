"""AS2 (RFC 4130) as far as we speak it: an interchange POSTed over HTTP with AS2 headers, answered with
a Message Disposition Notification (MDN, RFC 3798) that carries the MIC of what arrived, synchronously
in the HTTP response or asynchronously to the URL the sender names.

Payloads travel unsigned and unencrypted (over TLS in production). Signing and encryption (S/MIME,
PKCS#7) are not implemented yet: a signed or encrypted message is refused with an MDN that says so, and
a sender that *requires* a signed receipt gets a failure MDN rather than an unsigned one it said it
cannot use. See docs/edi.md.
"""

from __future__ import annotations

import base64
import email.message
import email.policy
import email.utils
import hashlib
import uuid
from dataclasses import dataclass
from email.parser import BytesParser

import httpx

#: content types of the payloads we take (an interchange as it is)
EDI_TYPES = ("application/edi-x12", "application/edifact", "application/edi-consent", "text/plain",
             "application/octet-stream")
SECURED_TYPES = ("multipart/signed", "application/pkcs7-mime", "application/x-pkcs7-mime")


def mic(payload: bytes) -> str:
    """The Received-Content-MIC of an unsigned payload: base64 SHA-256 of its bytes, then the algorithm."""
    return f"{base64.b64encode(hashlib.sha256(payload).digest()).decode()}, sha256"


def message_id(domain: str = "ordersync") -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


# -- sending ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What became of one send: ``delivered`` (an MDN saying processed, or none asked for), ``refused``
    (an MDN saying failed or processed/error: the partner will not take it as sent), or ``retry``
    (no answer worth having: try again later)."""

    outcome: str
    detail: str
    mic_matches: bool | None = None


def send(client: httpx.Client, url: str, payload: bytes, *, as2_from: str, as2_to: str, msg_id: str,
         subject: str = "EDI interchange", content_type: str = "application/edi-x12") -> Receipt:
    """POST ``payload`` to a partner's AS2 endpoint asking for a synchronous MDN, and read the MDN."""
    headers = {
        "AS2-Version": "1.2", "AS2-From": _quoted(as2_from), "AS2-To": _quoted(as2_to), "Message-ID": msg_id,
        "Subject": subject, "Date": email.utils.formatdate(usegmt=True), "MIME-Version": "1.0",
        "Content-Type": content_type, "Disposition-Notification-To": "edi@ordersync",
        "Disposition-Notification-Options": "signed-receipt-protocol=optional, pkcs7-signature; "
                                            "signed-receipt-micalg=optional, sha256",
    }
    try:
        response = client.post(url, content=payload, headers=headers)
    except httpx.HTTPError as exc:
        return Receipt("retry", f"{type(exc).__name__}: {exc}"[:500])
    if response.status_code in (408, 429) or response.status_code >= 500:
        return Receipt("retry", f"HTTP {response.status_code}: {response.text[:300]}")
    if response.status_code >= 400:
        return Receipt("refused", f"HTTP {response.status_code}: {response.text[:300]}")
    if not response.content:
        return Receipt("retry", f"HTTP {response.status_code} without an MDN")
    mdn = read_mdn(response.headers.get("content-type", ""), response.content)
    if mdn is None:
        return Receipt("retry", f"HTTP {response.status_code}: the answer is not an MDN "
                                f"({response.headers.get('content-type', 'no content type')})")
    matches = None if not mdn.mic else mdn.mic.split(",")[0].strip() == mic(payload).split(",")[0]
    if mdn.processed and matches is not False:
        return Receipt("delivered", f"MDN: {mdn.disposition}", matches)
    if mdn.processed:  # the partner received other bytes than we sent
        return Receipt("retry", f"MDN MIC {mdn.mic} is not the MIC of what we sent ({mic(payload)})", False)
    return Receipt("refused", f"MDN: {mdn.disposition}" + (f" ({mdn.text[:300]})" if mdn.text else ""), matches)


def _quoted(name: str) -> str:
    return f'"{name}"' if any(c in name for c in ' ",') else name


@dataclass(frozen=True)
class Mdn:
    disposition: str
    mic: str
    original_message_id: str
    text: str

    @property
    def processed(self) -> bool:
        """``processed`` without an error or failure modifier."""
        action = self.disposition.split(";", 1)[-1].strip().lower()
        return action.startswith("processed") and "/error" not in action and "failed" not in action


def read_mdn(content_type: str, body: bytes) -> Mdn | None:
    """The MDN in a ``multipart/report`` (or a bare ``message/disposition-notification``) answer."""
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = BytesParser(policy=email.policy.compat32).parsebytes(raw)
    text = ""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "text/plain" and not text:
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace").strip() if isinstance(payload, bytes) else ""
        if ctype == "message/disposition-notification":
            fields = _fields(part)
            return Mdn(fields.get("disposition", ""), fields.get("received-content-mic", ""),
                       fields.get("original-message-id", ""), text)
    return None


def _fields(part: email.message.Message) -> dict[str, str]:
    """The notification's fields (RFC 3798: header lines, parsed by the email package as sub-messages)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        out: dict[str, str] = {}
        for sub in payload:
            if not isinstance(sub, email.message.Message):
                continue
            for key, value in sub.items():
                out.setdefault(key.lower(), " ".join(str(value).split()))
        return out
    raw = payload if isinstance(payload, str) else ""
    out = {}
    for line in raw.replace("\r\n ", " ").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip().lower(), value.strip())
    return out


# -- receiving -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MdnRequest:
    """What the sender asked for: an MDN at all, synchronous or to a URL, signed or not."""

    wanted: bool
    async_url: str
    signed_required: bool

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> MdnRequest:
        options = headers.get("disposition-notification-options", "").lower()
        required = "signed-receipt-protocol=required" in options.replace(" ", "")
        return cls(bool(headers.get("disposition-notification-to")), headers.get("receipt-delivery-option", ""),
                   required)


def build_mdn(*, original_message_id: str, as2_from: str, as2_to: str, payload: bytes | None, disposition: str,
              text: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of an unsigned MDN (``multipart/report``) answering a message we received."""
    boundary = f"----=_ordersync_{uuid.uuid4().hex}"
    fields = [
        "Reporting-UA: ordersync",
        f"Original-Recipient: rfc822; {as2_to}",
        f"Final-Recipient: rfc822; {as2_to}",
        f"Original-Message-ID: {original_message_id}",
        f"Disposition: automatic-action/MDN-sent-automatically; {disposition}",
    ]
    if payload is not None:
        fields.append(f"Received-Content-MIC: {mic(payload)}")
    body = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n"
            f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n" + "\r\n".join(fields)
            + f"\r\n\r\n--{boundary}--\r\n").encode()
    headers = {
        "AS2-Version": "1.2", "AS2-From": _quoted(as2_to), "AS2-To": _quoted(as2_from),
        "Message-ID": message_id(), "MIME-Version": "1.0", "Date": email.utils.formatdate(usegmt=True),
        "Content-Type": f'multipart/report; report-type=disposition-notification; boundary="{boundary}"',
    }
    return headers, body

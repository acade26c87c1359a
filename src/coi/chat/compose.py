"""Composing COI messages from the model.

Every composed message carries a part any mail program can show (text/plain
first, HTML for structured data), uses base64 for binaries and keeps
machine-only data in microformats or hidden HTML.
"""

from __future__ import annotations

import re
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from urllib.parse import quote

from coi.chat import flowed, microformats, polls
from coi.chat.contacts import address_hash
from coi.chat.groups import remaining_members
from coi.chat.headers import CHAT_VERSION, COI_POLICY, chat_references, format_ids
from coi.chat.model import (
    Address,
    Attachment,
    ChatMessage,
    MessageKind,
    Profile,
)


def _header_addresses(addresses: tuple[Address, ...]) -> list[HeaderAddress]:
    return [HeaderAddress(display_name=a.name, addr_spec=a.addr) for a in addresses]


def _text_cte(text: str) -> str | None:
    return None if text.isascii() else "quoted-printable"


def quote_block(quote: str) -> str:
    """``> `` lines, as mail programs and Delta Chat quote the message a reply answers."""
    return "\n".join("> " + line if line else ">" for line in quote.splitlines())


def text_part(text: str, chat_content: str | None = None, quote: str = "") -> MIMEPart:
    """``text/plain; charset=UTF-8; format=flowed``. # coi-client-spec: Text Messages

    ``quote`` goes on top as quoted lines (RFC 3676 §4.5: quote depth 1, not stuffed)."""
    part = MIMEPart(policy=COI_POLICY)
    body = flowed.encode(text) + "\n"
    if quote:
        body = quote_block(quote) + "\n\n" + body
    part.set_content(
        body, subtype="plain", charset="utf-8", cte=_text_cte(body), params={"format": "flowed"}
    )
    if chat_content:
        part["Chat-Content"] = chat_content
    return part


def html_part(html: str, chat_content: str | None = None, subtype: str = "html") -> MIMEPart:
    part = MIMEPart(policy=COI_POLICY)
    part.set_content(html, subtype=subtype, charset="utf-8", cte=_text_cte(html))
    if chat_content:
        part["Chat-Content"] = chat_content
    return part


def binary_part(attachment: Attachment, chat_content: str | None = None) -> MIMEPart:
    """Base64, ``Content-Disposition: inline; filename=...; size=...``.

    # coi-client-spec: Binary Messages
    """
    part = MIMEPart(policy=COI_POLICY)
    maintype, _, subtype = attachment.content_type.partition("/")
    part.set_content(
        attachment.data,
        maintype=maintype or "application",
        subtype=subtype or "octet-stream",
        cte="base64",
        disposition="inline",
        filename=attachment.filename,
    )
    size = attachment.size if attachment.size is not None else len(attachment.data)
    disposition = "inline"
    if attachment.filename:
        disposition += "; " + parameter("filename", attachment.filename)
    del part["Content-Disposition"]
    part["Content-Disposition"] = f"{disposition}; size={size}"
    if chat_content:
        part["Chat-Content"] = chat_content
    return part


def multipart(subtype: str, parts: list[MIMEPart], **params: str) -> MIMEPart:
    container = MIMEPart(policy=COI_POLICY)
    container["Content-Type"] = f"multipart/{subtype}"
    for name, value in params.items():
        container.set_param(name.replace("_", "-"), value)
    container.set_payload(list(parts))
    return container


def _attachment_parts(attachments: tuple[Attachment, ...]) -> list[MIMEPart]:
    parts: list[MIMEPart] = []
    for attachment in attachments:
        if attachment.preview is not None:
            # coi-client-spec: Preview Message Parts
            parts.append(binary_part(attachment.preview, "preview"))
        parts.append(binary_part(attachment))
    return parts


def parameter(name: str, value: str) -> str:
    """``name=value`` for a header parameter (RFC 2045/2231).

    Quoted when needed; non-ASCII values are percent-encoded with a charset and
    long values split into numbered continuations, so that header folding
    never has to encode (and thereby break) the parameter syntax.
    """
    plain_token = re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`{|}~,-]+", value) is not None
    if value.isascii() and len(value) <= 60:
        if plain_token:
            return f"{name}={value}"
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{name}="{escaped}"'
    encoded = "utf-8''" + quote(value, safe="")
    chunks: list[str] = []
    while encoded:
        cut = min(48, len(encoded))
        # never split a %XX escape
        percent = encoded.rfind("%", max(0, cut - 2), cut)
        if percent != -1 and cut < len(encoded):
            cut = percent
        chunks.append(encoded[:cut])
        encoded = encoded[cut:]
    return "; ".join(f"{name}*{index}*={chunk}" for index, chunk in enumerate(chunks))


def _profile_part(profile: Profile, intro_html: str = "") -> MIMEPart:
    value = "profile"
    if profile.categories:
        value += "; " + parameter("categories", ",".join(profile.categories))
    card = microformats.render_card(profile.card)
    return html_part(microformats.document(intro_html, card), value)


def _default_text(message: ChatMessage) -> str:
    """Human-readable text for structured messages composed without text."""
    if message.text:
        return message.text
    if message.kind is MessageKind.POLL and message.poll is not None:
        return polls.poll_text(message.poll)
    if message.kind is MessageKind.POLL_VOTE and message.poll_vote is not None:
        return polls.vote_text(message.poll_vote)
    if message.kind is MessageKind.POLL_CLOSE and message.poll_close is not None:
        return polls.close_text(message.poll_close)
    if message.kind is MessageKind.DELETE:
        return "(original message marked as deleted)"
    return message.text


def _structured_html(message: ChatMessage) -> tuple[str, str] | None:
    """(Chat-Content, HTML fragment) of the message's main structured payload."""
    if message.location is not None:
        return "location", "<p>Position:</p>\n" + microformats.render_location(message.location)
    if message.poll is not None:
        return "poll", polls.render_poll(message.poll)
    if message.poll_vote is not None:
        return "pollvote", polls.render_vote(message.poll_vote)
    if message.poll_close is not None:
        return "pollclose", polls.render_close(message.poll_close)
    if message.group_info is not None and message.kind is not MessageKind.GROUP:
        hidden = microformats.render_group(message.group_info)
        return "groupinfo", f'<div style="display: none;">\n{hidden}\n</div>'
    return None


def _body(message: ChatMessage) -> MIMEPart:
    kind = message.kind
    text = _default_text(message)
    if kind is MessageKind.READ_RECEIPT and message.receipt is not None:
        return _receipt_body(message)
    if kind is MessageKind.CONTACT and message.contact is not None:
        card_html = microformats.render_card(message.contact.card)
        return html_part(microformats.document(card_html), "contact")
    if kind is MessageKind.PROFILE:
        return multipart("mixed", [_profile_part(p) for p in message.profiles])
    if kind is MessageKind.GROUP and message.group_info is not None:
        return html_part(
            microformats.document(microformats.render_group(message.group_info)), "group"
        )
    if kind is MessageKind.REACTION:
        part = text_part(message.reaction or "")
        part.replace_header("Content-Type", 'text/plain; charset="utf-8"')
        part["Content-Disposition"] = "reaction"
        return part
    if kind is MessageKind.EXTENSION and message.extension is not None:
        data = [binary_part(a, message.extension.name) for a in message.extension.parts]
        return multipart("mixed", [text_part(text), *data])

    location_text = text
    if message.location is not None:
        # coi-client-spec: Location Messages (plain-text fallback)
        loc = message.location
        position = f"Position: {loc.latitude!r}, {loc.longitude!r}"
        location_text = f"{text}\n-\n{position}" if text else position
    structured = _structured_html(message)
    profiles = list(message.profiles)
    alternatives: list[MIMEPart] = []
    if (
        text
        or location_text
        or structured
        or message.html
        or message.markdown
        or profiles
        or message.email_note
        or not message.attachments
    ):
        alternatives.append(text_part(location_text, quote=message.quote))
    user_html = (
        message.html
        if message.html is not None
        else (microformats.text_to_html(text) if text else "")
    )
    if structured is not None:
        chat_content, fragment = structured
        alternatives.append(html_part(microformats.document(user_html, fragment), chat_content))
    elif profiles and not message.attachments:
        # coi-client-spec: User Profile Information Message Part
        alternatives.append(_profile_part(profiles.pop(0), user_html))
    elif message.html is not None or message.markdown is not None:
        alternatives.append(
            html_part(microformats.document(user_html) if message.html is None else message.html)
        )
    if message.email_note:
        # coi-client-spec: Text Messages (Chat-Content: ignore hides it from COI clients)
        note = html_part(
            microformats.document(f"<p><i>{microformats.esc(message.email_note)}</i></p>"), "ignore"
        )
        html_index = next(
            (i for i, p in enumerate(alternatives) if p.get_content_type() == "text/html"), None
        )
        if html_index is None:
            alternatives.append(
                multipart("mixed", [html_part(microformats.document(user_html)), note])
            )
        else:
            alternatives[html_index] = multipart("mixed", [alternatives[html_index], note])
    if message.markdown is not None:
        alternatives.append(html_part(message.markdown, subtype="markdown"))

    mixed: list[MIMEPart] = []
    if len(alternatives) > 1:
        mixed.append(multipart("alternative", alternatives))
    else:
        mixed.extend(alternatives)
    mixed.extend(_profile_part(p) for p in profiles)
    mixed.extend(_attachment_parts(message.attachments))
    if len(mixed) == 1 and (message.pin is None or "Content-Disposition" not in mixed[0]):
        return mixed[0]
    return multipart("mixed", mixed)


def _receipt_body(message: ChatMessage) -> MIMEPart:
    """RFC 8098 MDN without the original message. # coi-client-spec: Sending Read Receipts"""
    receipt = message.receipt
    assert receipt is not None
    default_recipient = "rfc822;" + (message.sender.addr if message.sender else "")
    human = text_part(message.text or "Your message was displayed.")
    fields = [
        f"Reporting-UA: {receipt.reporting_ua or 'coi; coi'}",
        *(
            [f"Original-Recipient: {receipt.original_recipient}"]
            if receipt.original_recipient
            else []
        ),
        f"Final-Recipient: {receipt.final_recipient or default_recipient}",
        f"Original-Message-ID: <{receipt.original_message_id}>",
        f"Disposition: {receipt.disposition}",
    ]
    notification = MIMEPart(policy=COI_POLICY)
    notification["Content-Type"] = "message/disposition-notification"
    notification.set_payload("\r\n".join(fields) + "\r\n")
    return multipart("report", [human, notification], report_type="disposition-notification")


def _top_chat_contents(message: ChatMessage) -> list[str]:
    kind = message.kind
    values = {
        MessageKind.EDIT: "editrequest",
        MessageKind.DELETE: "deleterequest",
        MessageKind.CONTACT: "contact",
        MessageKind.PROFILE: "profile",
        MessageKind.GROUP: "group",
        MessageKind.GROUP_LEFT: "groupleft",
    }
    found = [values[kind]] if kind in values else []
    if kind is MessageKind.EXTENSION and message.extension is not None:
        found.append(message.extension.name)
    if message.requests_profile:
        found.append("profilerequest")
    if message.requests_group_info:
        found.append("grouprequested")
    return found


def compose(message: ChatMessage) -> EmailMessage:
    """Build the email for ``message``; sender, message id and date are required."""
    if message.sender is None or not message.message_id or message.date is None:
        raise ValueError("a message needs sender, message_id and date to be composed")
    if message.kind is MessageKind.SYSTEM:
        raise ValueError("system messages are recorded, not composed")
    email = EmailMessage(policy=COI_POLICY)
    email["From"] = _header_addresses((message.sender,))
    if message.recipients:
        email["To"] = _header_addresses(message.recipients)
    if message.cc:
        email["Cc"] = _header_addresses(message.cc)
    reply_to = message.reply_to
    if message.kind is MessageKind.GROUP_LEFT and not reply_to:
        # coi-client-spec: Leaving a Group (replies go to the remaining members)
        reply_to = remaining_members(message, message.sender.addr)
    if reply_to:
        email["Reply-To"] = _header_addresses(reply_to)
    subject = message.subject
    if not subject and message.group is not None:
        subject = message.group.name
    email["Subject"] = subject
    email["Date"] = format_datetime(message.date)
    email["Message-ID"] = f"<{message.message_id}>"
    in_reply_to = message.in_reply_to or message.target_message_id
    if in_reply_to:
        email["In-Reply-To"] = f"<{in_reply_to}>"
    references = (
        chat_references(message.references[:-1], message.references[-1])
        if message.references
        else ()
    )
    if references:
        email["References"] = format_ids(references)
    email["Chat-Version"] = message.chat_version or CHAT_VERSION
    for value in _top_chat_contents(message):
        email["Chat-Content"] = value
    if message.kind is MessageKind.EDIT and message.target_message_id:
        email["Chat-Edit"] = f"<{message.target_message_id}>"  # Delta Chat reads this
    if message.kind is MessageKind.DELETE and message.target_message_id:
        email["Chat-Delete"] = f"<{message.target_message_id}>"
    if message.group is not None and message.group.id:
        # Delta Chat finds groups by these headers, not by the Message-ID.
        email["Chat-Group-ID"] = message.group.id
        email["Chat-Group-Name"] = message.group.name
        # Delta Chat applies member and name changes only from these headers (one
        # address each; src/receive_imf.rs), the value of Name-Changed is the old name
        for name, value in message.chat_headers:
            if name.lower() == "chat-group-name-changed":
                email["Chat-Group-Name-Changed"] = value
        if message.members_added:
            email["Chat-Group-Member-Added"] = message.members_added[0]
        if message.members_removed:
            email["Chat-Group-Member-Removed"] = message.members_removed[0]
    if message.read_receipt_to is not None:
        if message.read_receipt_to.addr.lower() != message.sender.addr.lower():
            # coi-client-spec: COI-specific Message Header Fields
            raise ValueError("Disposition-Notification-To must be the sender's address")
        if message.read_receipt_from_mail_programs:
            # coi-client-spec: Requesting Read Receipts (RFC 8098); mail programs
            # ask their user about it, so only on request.
            email["Disposition-Notification-To"] = _header_addresses((message.read_receipt_to,))
        email["Chat-Disposition-Notification-To"] = message.read_receipt_to.addr
    if message.contact is not None and message.kind is MessageKind.CONTACT:
        contact = message.contact
        hashes = contact.from_hashes or tuple(address_hash(e) for e in contact.card.emails)
        for digest in hashes:
            email["COI-From-Hash"] = digest
        if contact.blocked:
            email["COI-Blocked"] = "yes"
        for token in contact.tokens_in:
            email["COI-TokenIn"] = token
        for token in contact.tokens_out:
            email["COI-TokenOut"] = token
    email["MIME-Version"] = "1.0"
    body = _body(message)
    top_values = {str(v) for v in email.get_all("Chat-Content", [])}
    for name, value in body.items():
        if name.lower() == "chat-content" and str(value) in top_values:
            continue  # single-part body: the message header already says it
        email[name] = value
    email.set_payload(body.get_payload())
    if message.pin is not None:
        # coi-client-spec: Pinned Messages
        value = "pinned"
        if message.pin.timeout is not None:
            value += f'; timeout="{format_datetime(message.pin.timeout)}"'
        del email["Content-Disposition"]
        email["Content-Disposition"] = value
    return email


def compose_bytes(message: ChatMessage) -> bytes:
    """The message as CRLF bytes ready for SMTP or IMAP APPEND."""
    return compose(message).as_bytes(policy=COI_POLICY)

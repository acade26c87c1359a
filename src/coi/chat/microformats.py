"""Reading and writing the microformats COI embeds in text/html parts.

h-card for people, h-group for groups, h-geo for locations.  Parsing goes
through mf2py with the lenient ``html.parser`` tree builder: the spec's own
examples nest ``<p>`` in ``<p>``, which an HTML5 parser would tear apart.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

from coi.chat.contacts import format_notification, parse_notification, split_categories
from coi.chat.model import Card, GroupInfo, Location

# mf2py is only fed this much HTML; beyond it the markup is not parsed for data.
MAX_MICROFORMAT_HTML = 512 * 1024

Item = dict[str, Any]


def parse_items(html: str) -> list[Item]:
    """Top-level microformat items of an HTML document; [] on any failure."""
    if not html or len(html) > MAX_MICROFORMAT_HTML:
        return []
    import mf2py  # with BeautifulSoup, a tenth of a second: only when there is HTML to read

    try:
        parsed = mf2py.parse(doc=html, html_parser="html.parser")
    except Exception:
        return []
    items = parsed.get("items", []) if isinstance(parsed, dict) else []
    return [item for item in items if isinstance(item, dict)]


def walk_items(items: list[Item]) -> Iterator[Item]:
    """Every item, nested ones included (children and embedded property values)."""
    stack = list(reversed(items))
    while stack:
        item = stack.pop()
        yield item
        nested: list[Item] = [c for c in item.get("children", []) if isinstance(c, dict)]
        for values in item.get("properties", {}).values():
            for value in values if isinstance(values, list) else []:
                if isinstance(value, dict) and "type" in value:
                    nested.append(value)
        stack.extend(reversed(nested))


def find_items(items: list[Item], item_type: str) -> list[Item]:
    return [item for item in walk_items(items) if item_type in item.get("type", [])]


def text_property(item: Item, name: str) -> str:
    values = item.get("properties", {}).get(name, [])
    return _as_text(values[0]).strip() if values else ""


def all_text_properties(item: Item, name: str) -> tuple[str, ...]:
    values = item.get("properties", {}).get(name, [])
    return tuple(t for t in (_as_text(v).strip() for v in values) if t)


def _as_text(value: Any) -> str:
    if isinstance(value, dict):
        inner = value.get("value", "")
        return inner if isinstance(inner, str) else str(inner)
    return value if isinstance(value, str) else str(value)


_STATUS_FALLBACK = re.compile(r'class="x-coi-status"[^>]*>([^<]*)<')


def card_from_item(item: Item, document: str = "") -> Card:
    """A :class:`Card` from an h-card item (status may use ``x-coi-status``)."""
    emails = tuple(e.removeprefix("mailto:") for e in all_text_properties(item, "email"))
    status = text_property(item, "status")
    if not status and document:
        match = _STATUS_FALLBACK.search(document)
        status = html_lib.unescape(match.group(1)).strip() if match else ""
    notification_text = text_property(item, "notification")
    return Card(
        name=text_property(item, "name"),
        emails=emails,
        nickname=text_property(item, "nickname"),
        photo=re.sub(r"\s+", "", text_property(item, "photo")),
        status=status,
        birthday=text_property(item, "bday"),
        key=text_property(item, "key"),
        categories=split_categories(",".join(all_text_properties(item, "category"))),
        notification=parse_notification(notification_text) if notification_text else None,
        address_hash=text_property(item, "hash"),
    )


def cards_in(html: str) -> list[Card]:
    """All h-cards that are not participants of an h-group."""
    items = parse_items(html)
    cards = [i for i in items if "h-card" in i.get("type", [])]
    return [card_from_item(c, html if len(cards) == 1 else "") for c in cards]


def group_in(html: str) -> GroupInfo | None:
    """The first h-group of the document, participants included."""
    groups = find_items(parse_items(html), "h-group")
    if not groups:
        return None
    group = groups[0]
    participants = [
        card_from_item(card)
        for card in walk_items([group])
        if card is not group and "h-card" in card.get("type", [])
    ]
    notification_text = text_property(group, "notification")
    return GroupInfo(
        id=text_property(group, "id") or None,
        name=text_property(group, "name"),
        description=text_property(group, "description"),
        photo=re.sub(r"\s+", "", text_property(group, "photo")),
        participants=tuple(participants),
        notification=parse_notification(notification_text) if notification_text else None,
    )


def location_in(html: str) -> Location | None:
    for geo in find_items(parse_items(html), "h-geo"):
        try:
            latitude = float(text_property(geo, "latitude"))
            longitude = float(text_property(geo, "longitude"))
        except ValueError:
            continue
        altitude_text = text_property(geo, "altitude")
        try:
            altitude = float(altitude_text) if altitude_text else None
        except ValueError:
            altitude = None
        return Location(latitude, longitude, altitude)
    return None


# ---------------------------------------------------------------- rendering

_HIDDEN = ' style="display: none"'


def esc(text: str) -> str:
    return html_lib.escape(text, quote=True)


def render_card(card: Card, element: str = "p") -> str:
    """An h-card readable in any mail program; machine-only fields hidden."""
    lines = [f'<{element} class="h-card">']
    if card.address_hash:
        lines.append(f'<span class="p-hash"{_HIDDEN}>{esc(card.address_hash)}</span>')
    if card.photo:
        lines.append(f'<img class="u-photo" alt="" src="{esc(card.photo)}">')
    lines.append(f'<span class="p-name">{esc(card.name)}</span><br>')
    if card.nickname:
        lines.append(f'Nickname: <span class="p-nickname">{esc(card.nickname)}</span><br>')
    for email in card.emails:
        lines.append(f'Email: <span class="u-email">{esc(email)}</span><br>')
    if card.status:
        lines.append(f'<span class="p-status">{esc(card.status)}</span><br>')
    if card.birthday:
        lines.append(f'Birthday: <time class="dt-bday">{esc(card.birthday)}</time><br>')
    if card.key:
        lines.append(f'<span class="u-key"{_HIDDEN}>{esc(card.key)}</span>')
    if card.categories:
        lines.append(f'<span class="p-category"{_HIDDEN}>{esc(", ".join(card.categories))}</span>')
    if card.notification is not None:
        value = esc(format_notification(card.notification))
        lines.append(f'<span class="p-notification"{_HIDDEN}>{value}</span>')
    lines.append(f"</{element}>")
    return "\n".join(lines)


def render_group(info: GroupInfo) -> str:
    lines = ['<div class="h-group">']
    if info.photo:
        lines.append(f'<img class="u-photo" alt="" src="{esc(info.photo)}">')
    if info.name:
        lines.append(f'Name: <span class="p-name">{esc(info.name)}</span><br>')
    if info.description:
        lines.append(f'Description: <span class="p-description">{esc(info.description)}</span><br>')
    if info.id:
        lines.append(f'<span class="p-id"{_HIDDEN}>{esc(info.id)}</span>')
    if info.notification is not None:
        value = esc(format_notification(info.notification))
        lines.append(f'<span class="p-notification"{_HIDDEN}>{value}</span>')
    lines.append("<p>Participants</p>")
    lines.append('<div class="e-participants">')
    lines.extend(render_card(card, "div") for card in info.participants)
    lines.append("</div>")
    lines.append("</div>")
    return "\n".join(lines)


def render_location(location: Location) -> str:
    parts = [
        '<p class="h-geo">',
        f'<span class="p-latitude">{location.latitude!r}</span>,',
        f'<span class="p-longitude">{location.longitude!r}</span>',
    ]
    if location.altitude is not None:
        parts.append(f', <span class="p-altitude">{location.altitude!r}</span>')
    parts.append("</p>")
    return "\n".join(parts)


def text_to_html(text: str) -> str:
    """User text as HTML paragraphs; mentions become ``a.mention`` links."""
    from coi.chat.mentions import render_mentions_html

    return "<p>" + render_mentions_html(text).replace("\n", "<br>\n") + "</p>"


def document(*fragments: str) -> str:
    body = "\n<hr>\n".join(f for f in fragments if f)
    return f"<!DOCTYPE html>\n<html>\n<body>\n{body}\n</body>\n</html>\n"


class _TextExtractor(HTMLParser):
    """HTML to readable text, skipping hidden and head content."""

    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "hr"})
    _SKIPPED = frozenset({"head", "style", "script", "title"})
    _VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.stack: list[tuple[str, bool]] = []

    def _hidden(self) -> bool:
        return any(hidden for _, hidden in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        style = (dict(attrs).get("style") or "").replace(" ", "").lower()
        hidden = tag in self._SKIPPED or "display:none" in style
        if tag in self._BLOCKS and not self._hidden():
            self.chunks.append("\n")
        if tag not in self._VOID and len(self.stack) < 256:
            self.stack.append((tag, hidden))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.chunks.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Readable text of an HTML part (used when a message has no text/plain)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:
        return re.sub(r"<[^>]*>", "", html).strip()
    lines = [line.strip() for line in "".join(extractor.chunks).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

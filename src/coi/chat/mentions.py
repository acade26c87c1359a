"""Mentions: ``@Name:addr``, ``@"Full Name":addr`` and ``@all``.

# coi-client-spec: Mentions in Group Messages
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

from coi.chat.model import Mention

_MENTION = re.compile(
    r'(?<![\w@])@(?:"(?P<quoted>[^"\n]{1,200})"|(?P<plain>[^\s:@"<>]{1,200})):'
    r"(?P<addr>[^\s@<>,;:\"]{1,200}@[A-Za-z0-9.-]{1,253}[A-Za-z0-9])"
    r"|(?<![\w@])@all\b"
)


def find_mentions(text: str) -> tuple[Mention, ...]:
    """Mentions in plain text, in order, duplicates removed."""
    found: list[Mention] = []
    for match in _MENTION.finditer(text):
        if match.group("addr"):
            mention = Mention(
                match.group("quoted") or match.group("plain") or "", match.group("addr")
            )
        else:
            mention = Mention("all", None)
        if mention not in found:
            found.append(mention)
    return tuple(found)


def format_mention(mention: Mention) -> str:
    if mention.addr is None:
        return "@all"
    name = mention.name
    if re.search(r'[\s:@"<>]', name) or not name:
        name = '"' + name.replace('"', "") + '"'
    return f"@{name}:{mention.addr}"


def render_mentions_html(text: str) -> str:
    """Escape ``text`` for HTML, turning mentions into ``a.mention`` links."""
    out: list[str] = []
    position = 0
    for match in _MENTION.finditer(text):
        out.append(html_lib.escape(text[position : match.start()]))
        if match.group("addr"):
            name = match.group("quoted") or match.group("plain") or ""
            addr = html_lib.escape(match.group("addr"))
            out.append(f'<a class="mention" href="mailto:{addr}">@{html_lib.escape(name)}</a>')
        else:
            out.append('<a class="mention" href="mailto:">@all</a>')
        position = match.end()
    out.append(html_lib.escape(text[position:]))
    return "".join(out)


class _MentionLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.mentions: list[Mention] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "a" and "mention" in classes:
            self._href = attributes.get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            name = "".join(self._text).strip().removeprefix("@")
            addr = self._href.removeprefix("mailto:").strip()
            mention = Mention(name, addr or None) if addr else Mention("all", None)
            if mention not in self.mentions:
                self.mentions.append(mention)
            self._href = None


def find_html_mentions(html: str) -> tuple[Mention, ...]:
    """Mentions marked up as ``<a class="mention" href="mailto:...">@Name</a>``."""
    parser = _MentionLinks()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        pass
    return tuple(parser.mentions)

"""Contract: SEARCH narrowing — the store finds the candidates of text keys by its own
indexes/queries (a superset the server then checks per message), scoped to one mailbox."""

from __future__ import annotations

from tests.contract.helpers import message, user_with_inbox

from coi.mail.search import fold_for_search
from coi.store.protocol import Store


async def test_text_matches_narrow_by_header_body_and_either(store: Store) -> None:
    user, inbox = await user_with_inbox(store)
    await store.append(
        inbox.id,
        [
            message("Lunch plans", "the pizza place at noon"),  # 1
            message("Weekly report", "numbers attached; lunch was fine"),  # 2
            message("Grüße aus Köln", "Straße und Café"),  # 3
            message("nothing", "to see here"),  # 4
        ],
    )
    other = await store.create_mailbox(user.id, "Other")
    await store.append(other.id, [message("Lunch plans", "pizza")])

    async def matches(*needles: tuple[str, str]) -> set[int]:
        return await store.text_matches(
            inbox.id, [(where, fold_for_search(n)) for where, n in needles]
        )

    assert await matches(("header", "LUNCH")) == {1}
    assert await matches(("body", "pizza")) == {1}
    assert await matches(("text", "lunch")) == {1, 2}
    assert await matches(("text", "lunch"), ("body", "numbers")) == {2}  # every needle
    assert await matches(("header", "köln")) == {3}
    assert await matches(("body", "STRASSE")) == {3}  # Unicode case folding (ß -> ss)
    assert await matches(("text", "absent")) == set()
    # many keys (RFC 3501 §6.4.4 sets no limit) still give a correct superset
    many = [("text", "lunch")] + [("text", "l")] * 500 + [("header", "plans")]
    assert await matches(*many) == {1}


async def test_a_header_text_cannot_hold_is_always_a_candidate(store: Store) -> None:
    """A header line with NUL (PostgreSQL's text cannot hold it) is never lost to a
    header needle: such a message is a candidate whatever the needle; the others are
    narrowed as usual, and another mailbox's messages never come along."""
    user, inbox = await user_with_inbox(store)
    odd = message("Lunch\x00plans", "pizza")
    await store.append(inbox.id, [message("Weekly report", "numbers"), odd, message("x", "y")])
    other = await store.create_mailbox(user.id, "Other")
    await store.append(other.id, [message("Lunch\x00plans", "pizza"), message("Lunch", "z")])
    found = await store.text_matches(inbox.id, [("header", fold_for_search("lunch"))])
    assert 2 in found and not found & {1, 3}
    found = await store.text_matches(inbox.id, [("header", fold_for_search("weekly"))])
    assert 1 in found and 3 not in found


async def test_search_data_of_each_message(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    stored = [message("a", "alpha"), message("b", "beta")]
    await store.append(inbox.id, stored)
    assert await store.search_blobs(inbox.id, [1, 2, 3]) == {
        1: stored[0].search,
        2: stored[1].search,
    }
    assert await store.search_blobs(inbox.id, []) == {}

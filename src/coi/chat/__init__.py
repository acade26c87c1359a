"""COI chat messages: a pure library composing and parsing every COI message type.

Entry points (imported from their modules to keep this package import light;
the server imports only :mod:`coi.chat.detect` on its delivery path):

* :func:`coi.chat.detect.is_chat_message`, :func:`coi.chat.detect.is_chat_message_bytes`
* :func:`coi.chat.parse.parse` -> :class:`coi.chat.model.ChatMessage`
* :func:`coi.chat.compose.compose`, :func:`coi.chat.compose.compose_bytes`
* :func:`coi.chat.conversation.apply_messages`, :func:`coi.chat.groups.apply_group_messages`,
  :func:`coi.chat.polls.tally`, :func:`coi.chat.contacts.merge_contacts`

See docs/chat-model.md and docs/polls.md.
"""

"""Message indexing: parse once at delivery, answer FETCH/SEARCH from stored data."""

from coi.mail.index import MessageIndex, Part, dump_index, index_message, load_index
from coi.mail.search import SearchData, dump_search, fold_for_search, load_search, search_data
from coi.mail.sections import decoded_part, header_fields, section_bytes

__all__ = [
    "MessageIndex",
    "Part",
    "SearchData",
    "decoded_part",
    "dump_index",
    "dump_search",
    "fold_for_search",
    "header_fields",
    "index_message",
    "load_index",
    "load_search",
    "search_data",
    "section_bytes",
]

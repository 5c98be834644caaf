"""Whether text from outside can be stored and looked up at all."""


def storable(text: str) -> bool:
    """False for text no database column or query can hold: PostgreSQL refuses NUL characters in
    text and jsonb, and lone surrogates cannot be encoded. Inputs a form does not clean (headers,
    URL parts, JSON bodies) are checked with this, so they get a 4xx rather than a database error."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def storable_json(value) -> bool:
    """`storable` for every key and string inside a decoded JSON value, however deeply nested
    (walked with a list, not recursion, so depth alone cannot make it fail)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True

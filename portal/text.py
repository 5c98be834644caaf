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
    """`storable` for every key and string inside a decoded JSON value."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return all(storable(key) and storable_json(item) for key, item in value.items())
    if isinstance(value, list):
        return all(storable_json(item) for item in value)
    return True

"""JSON log lines: a fixed event name as the message, details from `extra`; and the redaction of
the secrets some URLs carry, for every line that may quote a URL (Django's request warnings, the
development server's and gunicorn's access lines)."""

import json
import logging
import re

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | type(None)) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


REDACTED = "[redacted]"
_SLASH = r"(?:/|%2[fF])"
# URLs whose last part is a one-time token or a claim code: the transfer, invitation and connect
# links, the QR label's short URL, allauth's email-confirmation and password-reset keys, the
# unsubscribe link.
_SECRET_IN_PATH = re.compile(
    rf"({_SLASH}(?:transfer|shares|apps{_SLASH}connect|c|accounts{_SLASH}confirm-email"
    rf"|accounts{_SLASH}password{_SLASH}reset{_SLASH}key|devices{_SLASH}notifications{_SLASH}unsubscribe){_SLASH})"
    r"(?:(?!%2[fF]|%3[fF])[^/\s?#&\"'])+"
)
# ?code= on the claim form (from the QR redirect), also when quoted inside ?next=, in any case
# (Django's QueryDict reads `Code=` as another name, but a log reader should not see it either),
# after `;` (an old separator some clients send) and at the very start (gunicorn's `%(q)s` atom is
# the query string without its `?`).
_SECRET_IN_QUERY = re.compile(
    r"((?:^|[?&;]|%3[fF]|%26|%3[bB])(?:code|token|key)(?:=|%3[dD]))(?:(?!%26|%3[bB])[^&;\s#\"'])+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with the secret part of any secret-carrying URL in it replaced."""
    return _SECRET_IN_QUERY.sub(rf"\1{REDACTED}", _SECRET_IN_PATH.sub(rf"\1{REDACTED}", text))


class RedactSecretsFilter(logging.Filter):
    """On the handlers: a record reaches the log only after its message, its arguments and the
    request it names went through `redact` (Django's "Not Found: /transfer/<token>/")."""

    def filter(self, record):
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redact(v) if isinstance(v, str) else v for key, v in record.args.items()}
        if getattr(record, "request", None) is not None and not isinstance(record.request, str):
            record.request = redact(str(record.request))
        return True


class QuietDeviceRequestsFilter(logging.Filter):
    """On the development server's logger: drops the line of a device request that succeeded
    (`"POST /device/v1/checkin HTTP/1.1" 200 35`); a refused or failed one is still logged."""

    def filter(self, record):
        line = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        path = line.split(" ")[1] if isinstance(line, str) and line.count(" ") >= 2 else ""
        return not (path.startswith("/device/") and record.levelno < logging.WARNING)

"""Pages that update themselves: the one answer of every live endpoint (conditional short polling).

A live page (the device page, the device list, an application's delivery log) names in its data
attributes the endpoint to poll (`data-live-url`) and marks each region the endpoint refreshes with
`data-live="<name>"`; `static/js/live.js` polls every 2.5 s (within the 5 s a change must show in)
while the tab is visible and swaps each region's content in place. The endpoint answers JSON
`{"fragments": {name: html}}`.

Why polling with ETag / 304 and not server-sent events: production runs gunicorn with sync workers,
where an event stream holds a worker for as long as a page is open (ten open pages, ten workers
busy doing nothing); a poll holds one for a few milliseconds, and needs nothing but HTTP.

Two ways to "nothing changed" (docs/performance.md has their cost):
- from the database: the endpoint computes a version of what its page shows from one small query
  (no rendering) and answers 304 when the browser holds it (`answer`);
- before the session is even read (`not_modified_early`): a page whose data marks itself changed
  (`changed(scopes)`, after commit: the device outbox does it for every event of a device) keeps a
  token per scope in the cache; the ETag carries the token it was rendered under, signed for this
  session, page and minute. While the token is unchanged the answer is 304 with no query at all. A
  304 shows nothing but "no change since what you were shown", so a tag that outlives the person's
  access (logged out, a share revoked) tells nothing new, and it lasts only until the minute ends.
  A cache outage only turns this off (every poll asks the database).

The ETag also carries who asks and the page's query string (what they see differs), and the minute
(so "2 minutes ago" moves on even when nothing else does).
"""

import hashlib
import re
import secrets
from functools import partial, wraps
from http import HTTPStatus

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.crypto import constant_time_compare, salted_hmac

# How long a scope's token is kept without a change; a missing one is made again (the database answers).
TOKEN_SECONDS = 3600
_TAG = re.compile(r'"([0-9a-f]{0,16})\.(\d{12})\.([0-9a-f]{24})\.([0-9a-f]{24})"')


def _key(scope):
    return f"live:{scope}"


def changed(scopes):
    """Marks `scopes` changed: the next poll of a page on them asks the database again."""
    scopes = set(scopes)
    if len(scopes) == 1:  # a check-in: one SET, the cheapest round trip
        cache.set(_key(scopes.pop()), secrets.token_hex(6), timeout=TOKEN_SECONDS)
    elif scopes:
        cache.set_many({_key(scope): secrets.token_hex(6) for scope in scopes}, timeout=TOKEN_SECONDS)


def changed_on_commit(scopes):
    """`changed(scopes)` once the transaction commits (a poll in between still sees the old rows,
    and the token it is given is the old one: the next poll asks again). A cache outage never fails
    the change."""
    transaction.on_commit(partial(changed, list(scopes)), robust=True)


def _token(scope):
    """The scope's token now ("" when the cache has none). Read before the page's rows, so a change
    that commits in between moves the token after it and the next poll asks the database again."""
    return cache.get(_key(scope)) or ""


def _token_start(scope):
    """Gives a scope without a token one, for the polls to come (this answer's ETag has none: the
    rows it read may predate it). Only after the page's access check, so polls of pages nobody may
    see write nothing."""
    cache.add(_key(scope), secrets.token_hex(6), timeout=TOKEN_SECONDS)


def _minute():
    return timezone.now().strftime("%Y%m%d%H%M")


def _tag(request, scope, token, minute, version_hash):
    session = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
    text = "|".join([scope, token, minute, version_hash, session, request.GET.urlencode()])
    signature = salted_hmac("portal.live.etag", text).hexdigest()[:24]
    return f'"{token}.{minute}.{version_hash}.{signature}"'


def _sent(request, scope):
    """(token, minute, version hash) of the If-None-Match sent, if this portal signed it for this
    session, page and scope; else None."""
    value = request.headers.get("If-None-Match", "").strip()
    match = _TAG.fullmatch(value)
    if match is None:
        return None
    token, minute, version_hash, _signature = match.groups()
    if not constant_time_compare(value, _tag(request, scope, token, minute, version_hash)):
        return None
    return token, minute, version_hash


def _private(response, tag):
    response["ETag"] = tag
    # Each person's own, kept by no cache (as every signed-in answer: NoStoreForAccountsMiddleware);
    # live.js sends the ETag back itself and gets a 304 when nothing changed.
    patch_cache_control(response, private=True, no_cache=True, no_store=True)
    return response


def not_modified_early(scope_of):
    """Decorates a live endpoint whose data marks itself changed (`changed`): 304 before the
    session, the user or any row is read when the browser's ETag was signed for this session, page
    and scope this minute under the scope's current token. `scope_of(**url kwargs)` names the scope.
    Goes outside login_required (nothing but a 304 is answered before it)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            scope = scope_of(**kwargs)
            token = _token(scope)
            sent = _sent(request, scope)
            if sent is not None and token and sent[0] == token and sent[1] == _minute():
                return _private(HttpResponse(status=HTTPStatus.NOT_MODIFIED), request.headers["If-None-Match"].strip())
            request.live_scope, request.live_token = scope, token
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def answer(request, version, fragments):
    """The live endpoint's answer: 304 if the browser holds `version` already (from the database),
    else the fragments `fragments()` renders ({name: html}); either with the ETag of `version`."""
    scope, token = getattr(request, "live_scope", ""), getattr(request, "live_token", "")
    if scope and not token:
        _token_start(scope)
    minute = _minute()
    version_hash = hashlib.blake2b(repr((request.user.pk, version)).encode(), digest_size=12).hexdigest()
    tag = _tag(request, scope, token, minute, version_hash)
    sent = _sent(request, scope)
    if sent is not None and sent[1] == minute and sent[2] == version_hash:
        return _private(HttpResponse(status=HTTPStatus.NOT_MODIFIED), tag)
    return _private(JsonResponse({"fragments": fragments()}), tag)

"""Pages that update themselves: the one answer of every live endpoint (conditional short polling).

A live page (the device page, the device list, an application's delivery log) names in its data
attributes the endpoint to poll (`data-live-url`) and marks each region the endpoint refreshes with
`data-live="<name>"`; `static/js/live.js` polls every few seconds while the tab is visible and
swaps each region's content in place. The endpoint answers JSON `{"fragments": {name: html}}`.

Why polling with ETag / 304 and not server-sent events: production runs gunicorn with sync workers,
where an event stream holds a worker for as long as a page is open (ten open pages, ten workers
busy doing nothing); a poll holds one for a few milliseconds. So each endpoint first computes a
version of what its page shows, from one small query (no rendering), and answers 304 when the
browser already holds that version; only a change renders the fragments again.

The ETag also carries who asks and the page's query string (what they see differs), and the minute
(so "2 minutes ago" moves on even when nothing else does).
"""

import hashlib
from http import HTTPStatus

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.cache import patch_cache_control

# How often live.js polls (ms): within the 5 s a change must show in, cheap when nothing changed.
POLL_MS = 2500


def etag(request, version) -> str:
    """A strong ETag of `version` (anything with a stable repr) for this person, page and minute."""
    minute = timezone.now().replace(second=0, microsecond=0).isoformat()
    text = repr((request.user.pk, request.GET.urlencode(), minute, version))
    return '"' + hashlib.blake2b(text.encode(), digest_size=12).hexdigest() + '"'


def _not_modified(request, tag) -> bool:
    given = request.headers.get("If-None-Match", "")
    return tag in {part.strip() for part in given.split(",")}


def _private(response, tag):
    response["ETag"] = tag
    # Each person's own; the browser must ask again each time (and gets a 304 when nothing changed).
    patch_cache_control(response, private=True, no_cache=True)
    return response


def answer(request, version, fragments):
    """The live endpoint's answer: 304 if the browser holds `version` already, else the fragments
    `fragments()` renders ({name: html}), with the ETag of `version`."""
    tag = etag(request, version)
    if _not_modified(request, tag):
        return _private(HttpResponse(status=HTTPStatus.NOT_MODIFIED), tag)
    return _private(JsonResponse({"fragments": fragments()}), tag)

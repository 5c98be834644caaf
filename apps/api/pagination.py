from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination

from portal.text import storable


class ApiCursorPagination(CursorPagination):
    """Opaque `cursor` links (`next`, `previous`) and `limit` rows a page: stable while rows are added.

    Each page is one query whatever its size: the cursor is a position in an indexed order, never
    an OFFSET over everything before it, and there is no COUNT(*).
    """

    page_size = 50
    page_size_query_param = "limit"
    page_size_query_description = "Rows per page, 1 to 100 (default 50); anything else is a 400."
    max_page_size = 100
    cursor_query_description = (
        "An opaque position to continue from: take the `next` or `previous` link as it is. "
        "Anything else is a 400."
    )

    def get_page_size(self, request):
        # DRF quietly falls back to the default for a bad `limit` and caps a big one; a client that
        # asked for 500 rows and got 100 would think it has read everything.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            message = f"Give a whole number from 1 to {self.max_page_size}."
            raise exceptions.ValidationError({self.page_size_query_param: [message]})
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        # A cursor that decodes but holds a position no column can take (a made-up `p=`) is found
        # out only when the page's query is built.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, ValueError, TypeError):
            raise self._invalid() from None

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            # A malformed cursor is bad input (400), not a missing page.
            raise self._invalid() from None
        if cursor is not None and cursor.position is not None and not storable(cursor.position):
            raise self._invalid()  # a NUL no query can carry (PostgreSQL refuses it)
        return cursor

    def _invalid(self):
        return exceptions.ValidationError({self.cursor_query_param: ["This cursor is not valid."]})


class DeviceCursorPagination(ApiCursorPagination):
    ordering = "serial"  # unique, and the (owner, serial) index's order


class ReadingCursorPagination(ApiCursorPagination):
    ordering = "-recorded_at"  # newest first, the reading_device_time index


class CommandCursorPagination(ApiCursorPagination):
    ordering = "-created_at"


class EventCursorPagination(ApiCursorPagination):
    # Oldest first, so following `next` walks forward in time and a poller never misses an event.
    ordering = "created_at"

"""The integrator API under /api/v1/: an application reads and commands the devices linked to it.

Every view starts from `selectors.device_list_for_application`, so a device the caller may not
see is a 404 (never a 403) everywhere. Authentication, the permission and the throttle come from
`ApplicationApi`; errors leave through `portal.errors.api_exception_handler` in the one shape.
"""

import logging
from functools import cache

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.models import Application
from apps.services import links
from devices.command_queue import command_send
from devices.product_fields import fields_for_product

from . import selectors
from .authentication import ApplicationBasicAuthentication
from .event_schema import EVENT_SCHEMA, EventOutput
from .pagination import (
    CommandCursorPagination,
    DeviceCursorPagination,
    EventCursorPagination,
    ReadingCursorPagination,
)
from .schema import LIST_ERRORS, READ_ERRORS, WRITE_ERRORS, error_responses
from .serializers import (
    COMMAND_SEND_EXAMPLE,
    CommandOutput,
    CommandSendInput,
    ConnectLinkOutput,
    DeviceDetailOutput,
    DeviceFilterInput,
    DeviceOutput,
    EventFilterInput,
    ReadingFilterInput,
    ReadingOutput,
)
from .throttling import ApplicationRateThrottle

logger = logging.getLogger(__name__)

DEVICE_ID = OpenApiParameter("device_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The device's id.")
COMMAND_ID = OpenApiParameter("command_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The command's id.")
# Headers of the error answers, so clients (and the schema checks) know to expect them.
ERROR_HEADERS = [
    OpenApiParameter(
        "WWW-Authenticate", str, OpenApiParameter.HEADER, response=[401], description='`Basic realm="api"`'
    ),
    OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=[429], description="Seconds to wait."),
]


@cache
def _query_names(serializer_class) -> tuple[tuple[str, ...], bool]:
    """The parameters `serializer_class` reads, and whether a query naming none of them may skip
    validation: it validates to nothing when no field is required and none has a default."""
    empty = serializer_class(data={})
    return tuple(serializer_class().fields), empty.is_valid() and not empty.validated_data


class ApplicationApi(APIView):
    """Base of every integrator endpoint: Basic AppId:Secret, authenticated only, throttled per application."""

    authentication_classes = [ApplicationBasicAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ApplicationRateThrottle]

    @property
    def application(self) -> Application:
        return self.request.auth

    def query_input(self, serializer_class) -> dict:
        names, skippable = _query_names(serializer_class)
        params = self.request.query_params
        if skippable and not any(name in params for name in names):
            return {}  # most requests filter nothing: no serializer built (each copies its fields)
        # DRF reads `?status=` as no filter at all; a client that sent one meant something, so it
        # hears that the value is missing instead of getting every row.
        blank = {name: ["Give a value, or leave the parameter out."] for name in names if params.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        serializer = serializer_class(data=params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def body_input(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def paginated(self, queryset, output_class):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(output_class(page, many=True).data)


# --- devices -----------------------------------------------------------------------------------


class DeviceListApi(ApplicationApi):
    """The devices linked to your application, by serial; filter by status, product or last check-in."""

    pagination_class = DeviceCursorPagination

    @extend_schema(
        operation_id="devices_list",
        summary="List the devices linked to your application",
        parameters=[DeviceFilterInput, *ERROR_HEADERS],
        responses={200: DeviceOutput(many=True), **error_responses(*LIST_ERRORS)},
        tags=["devices"],
    )
    def get(self, request):
        filters = self.query_input(DeviceFilterInput)
        # Rows as dicts of only the columns the page shows, not Device instances; the latest values
        # (JSON) are the detail's.
        return self.paginated(selectors.LinkedDeviceRows(self.application, **filters), DeviceOutput)


class DeviceDetailApi(ApplicationApi):
    """One linked device with the values it reported last."""

    @extend_schema(
        operation_id="devices_retrieve",
        summary="One device, with its latest values",
        parameters=[DEVICE_ID, *ERROR_HEADERS],
        responses={200: DeviceDetailOutput, **error_responses(*READ_ERRORS)},
        tags=["devices"],
    )
    def get(self, request, device_id):
        device = selectors.device_get_for_application(self.application, device_id)
        return Response(DeviceDetailOutput(device, context={"fields": fields_for_product(device.product)}).data)


class ReadingListApi(ApplicationApi):
    """A linked device's value history between `since` and `until`, newest first."""

    pagination_class = ReadingCursorPagination

    @extend_schema(
        operation_id="devices_readings_list",
        summary="A device's value history, newest first",
        parameters=[DEVICE_ID, ReadingFilterInput, *ERROR_HEADERS],
        responses={200: ReadingOutput(many=True), **error_responses(*READ_ERRORS)},
        tags=["devices"],
    )
    def get(self, request, device_id):
        filters = self.query_input(ReadingFilterInput)
        device = selectors.device_get_for_application(self.application, device_id)
        return self.paginated(selectors.reading_list_for_device(self.application, device, **filters), ReadingOutput)


# --- commands ----------------------------------------------------------------------------------


class CommandListApi(ApplicationApi):
    """Send commands to a linked device, and list the ones your application sent."""

    pagination_class = CommandCursorPagination

    @extend_schema(
        operation_id="devices_commands_list",
        summary="The commands your application sent to a device, newest first",
        parameters=[DEVICE_ID, *ERROR_HEADERS],
        responses={200: CommandOutput(many=True), **error_responses(*READ_ERRORS)},
        tags=["commands"],
    )
    def get(self, request, device_id):
        device = selectors.device_get_for_application(self.application, device_id)
        return self.paginated(selectors.command_list_for_application(self.application, device), CommandOutput)

    @extend_schema(
        operation_id="devices_commands_create",
        summary="Send a command to a device",
        description="Queued until the device's next check-in. A name the device's product does not accept "
        "is a 400 naming the field `name`; parameters that do not fit the command's declaration (type, "
        "range, required, no unknown ones) are a 400 naming each as `params.<name>`.",
        parameters=[DEVICE_ID, *ERROR_HEADERS],
        request=CommandSendInput,
        examples=[COMMAND_SEND_EXAMPLE],
        responses={201: CommandOutput, **error_responses(*WRITE_ERRORS)},
        tags=["commands"],
    )
    def post(self, request, device_id):
        data = self.body_input(CommandSendInput)
        device = selectors.device_get_for_application(self.application, device_id)
        command = command_send(
            device=device,
            name=data["name"],
            params=data.get("params"),
            ttl=data.get("ttl"),
            sent_by_app=self.application.app_id,
        )
        location = reverse("apps-api:command-detail", args=[device.pk, command.pk])
        return Response(CommandOutput(command).data, status=status.HTTP_201_CREATED, headers={"Location": location})


class CommandDetailApi(ApplicationApi):
    """One command your application sent: its status and the device's result."""

    @extend_schema(
        operation_id="devices_commands_retrieve",
        summary="Follow one command",
        parameters=[DEVICE_ID, COMMAND_ID, *ERROR_HEADERS],
        responses={200: CommandOutput, **error_responses(*READ_ERRORS)},
        tags=["commands"],
    )
    def get(self, request, device_id, command_id):
        device = selectors.device_get_for_application(self.application, device_id)
        command = selectors.command_get_for_application(self.application, device, command_id)
        return Response(CommandOutput(command).data)


# --- events ------------------------------------------------------------------------------------


class EventListApi(ApplicationApi):
    """Events of your linked devices since they were linked: the webhook stream, for polling."""

    pagination_class = EventCursorPagination

    @extend_schema(
        operation_id="events_list",
        summary="Recent events of your devices, oldest first",
        description="For integrators who poll instead of receiving callbacks. The same events, with the "
        "same ids, as the webhook deliveries: deduplicate by `id`. Follow `next` to the end, then poll "
        "again later with `since` set to the `created_at` of the last event you read.",
        parameters=[EventFilterInput, *ERROR_HEADERS],
        responses={200: EVENT_SCHEMA, **error_responses(*LIST_ERRORS)},
        tags=["events"],
    )
    def get(self, request):
        filters = self.query_input(EventFilterInput)
        return self.paginated(selectors.event_list_for_application(self.application, **filters), EventOutput)


# --- connect links -----------------------------------------------------------------------------


class ConnectLinkCreateApi(ApplicationApi):
    """Mint a single-use link that lets a signed-in user add your application (valid one hour)."""

    @extend_schema(
        operation_id="connect_links_create",
        summary="Mint a connect link for a user",
        description="Send your user to `url`: once signed in to the portal they add your application in one "
        "step, and from then on you may claim devices for them with `POST /claims`. The link works once and "
        "expires at `expires_at`. No request body.",
        request=None,
        parameters=ERROR_HEADERS,
        responses={201: ConnectLinkOutput, **error_responses(*LIST_ERRORS)},
        tags=["connect links"],
    )
    def post(self, request):
        link, url = links.connect_link_create(application=self.application)
        logger.info("api.connect_link_created", extra={"app_id": self.application.app_id, "link_id": link.pk})
        return Response(
            ConnectLinkOutput({"url": url, "expires_at": link.expires_at}).data, status=status.HTTP_201_CREATED
        )

"""The OEM's admin for applications: managed applications offered to every owner, connect links,
and a read-only view of deliveries.

Secrets go through the services: a new application's Secret, a replaced Secret and a connect link
are shown once on a page of their own and never stored in a message or a log.
"""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from portal.errors import ValidationError

from .models import Application, CallbackAuthStyle, Connection, ConnectLink, Delivery
from .services import applications, links


class ApplicationAdminForm(forms.ModelForm):
    logo_url = forms.URLField(required=False, assume_scheme="https")
    registration_url = forms.URLField(required=False, assume_scheme="https")
    callback_url = forms.CharField(required=False, max_length=500, help_text="HTTPS; checked against private targets.")

    class Meta:
        model = Application
        fields = [
            "name",
            "managed",
            "description",
            "logo_url",
            "registration_url",
            "callback_url",
            "auth_style",
            "token_prefix",
            "owner",
        ]

    def clean_callback_url(self):
        try:
            return applications.callback_url_validate(self.cleaned_data.get("callback_url", ""))
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_token_prefix(self):
        try:
            return applications.token_prefix_validate(self.cleaned_data.get("token_prefix", ""))
        except ValidationError as exc:
            raise forms.ValidationError(exc.message) from None


def _shown_once(request, *, title, application, rows):
    response = TemplateResponse(
        request,
        "admin/apps/shown_once.html",
        {**admin.site.each_context(request), "title": title, "application": application, "rows": rows},
    )
    response["Cache-Control"] = "no-store, private"
    return response


OWNER_APPLICATIONS_PERMISSION = "apps.manage_owner_applications"


def _sees_owner_applications(request) -> bool:
    return request.user.has_perm(OWNER_APPLICATIONS_PERMISSION)


class OemApplicationsOnly:
    """Without OWNER_APPLICATIONS_PERMISSION, staff see and act on the OEM's own applications (no
    owner) and what hangs off them: an owner's application, its Secret, callback and deliveries
    are the owner's."""

    application_path = "application__"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if _sees_owner_applications(request):
            return queryset
        return queryset.filter(**{f"{self.application_path}owner__isnull": True})


@admin.register(Application)
class ApplicationAdmin(OemApplicationsOnly, admin.ModelAdmin):
    application_path = ""
    form = ApplicationAdminForm
    list_display = ["name", "app_id", "managed", "owner", "callback_url", "paused_at", "created_at"]
    list_filter = ["managed", "auth_style", ("paused_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "app_id"]
    readonly_fields = ["app_id", "paused_at", "pause_reason", "failing_since", "created_at"]
    raw_id_fields = ["owner"]
    actions = ["connect_link_action", "secret_replace_action", "resume_action"]

    def get_changeform_initial_data(self, request):
        return {"managed": True, "auth_style": CallbackAuthStyle.BASIC, "token_prefix": "Token"}

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        # Giving an application to an owner is as good as taking one over.
        return fields if _sees_owner_applications(request) else [f for f in fields if f != "owner"]

    def get_list_display(self, request):
        columns = super().get_list_display(request)
        return columns if _sees_owner_applications(request) else [c for c in columns if c != "owner"]

    def save_model(self, request, obj, form, change):
        if change:
            data = form.cleaned_data
            # The settings go through the service (the SSRF guard, the callback-off note); the rest
            # are the admin's own fields.
            applications.application_update(
                application=obj,
                name=data["name"],
                callback_url=data.get("callback_url", ""),
                auth_style=data["auth_style"],
                token_prefix=data.get("token_prefix", ""),
            )
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        application, secret = applications.application_create(
            owner=data.get("owner"),
            name=data["name"],
            callback_url=data.get("callback_url", ""),
            auth_style=data["auth_style"],
            token_prefix=data.get("token_prefix", ""),
            managed=data.get("managed", False),
            description=data.get("description", ""),
            registration_url=data.get("registration_url", ""),
            logo_url=data.get("logo_url", ""),
        )
        obj.pk, obj.app_id = application.pk, application.app_id
        request._application_secret = secret

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_application_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _shown_once(
            request,
            title=f"{obj.name} created",
            application=obj,
            rows=[("App Id", obj.app_id, "data-app-id"), ("Secret", secret, "data-secret")],
        )

    @admin.action(description="Create a connect link (one owner, one hour)", permissions=["change"])
    def connect_link_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one application.", messages.WARNING)
            return None
        application = queryset.get()
        _, url = links.connect_link_create(application=application)
        return _shown_once(
            request, title=f"Connect link for {application.name}", application=application, rows=[("Link", url, "")]
        )

    @admin.action(description="Replace the Secret (shown once)", permissions=["change"])
    def secret_replace_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one application.", messages.WARNING)
            return None
        application = queryset.get()
        secret = applications.application_secret_replace(application=application)
        return _shown_once(
            request,
            title=f"New Secret for {application.name}",
            application=application,
            rows=[("App Id", application.app_id, "data-app-id"), ("Secret", secret, "data-secret")],
        )

    @admin.action(description="Resume deliveries", permissions=["change"])
    def resume_action(self, request, queryset):
        for application in queryset.exclude(paused_at=None):
            applications.application_resume(application=application)
        self.message_user(request, "Deliveries resumed.")


@admin.register(Delivery)
class DeliveryAdmin(OemApplicationsOnly, admin.ModelAdmin):
    list_display = ["event_type", "application", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "event_type"]
    list_select_related = ["application"]
    search_fields = ["application__app_id"]
    raw_id_fields = ["application", "event"]
    exclude = ["payload"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Connection)
class ConnectionAdmin(OemApplicationsOnly, admin.ModelAdmin):
    list_display = ["application", "user", "created_at"]
    raw_id_fields = ["application", "user"]


@admin.register(ConnectLink)
class ConnectLinkAdmin(OemApplicationsOnly, admin.ModelAdmin):
    list_display = ["application", "created_at", "expires_at", "used_at"]
    exclude = ["token_digest"]
    raw_id_fields = ["application", "used_by"]

    def has_add_permission(self, request):
        return False  # a link is shown once when made: use the action on the application

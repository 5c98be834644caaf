"""The owner's application pages: list, create, details with links, deliveries and settings."""

from http import HTTPStatus

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from devices import access
from portal import live
from portal.errors import ApplicationError, ValidationError
from portal.secrets import decrypt, encrypt

from . import selectors
from .forms import ApplicationCreateForm, ApplicationSettingsForm, SecretReplaceForm
from .models import DeliveryStatus
from .services import applications, fanout, links


def _no_store(response):
    # Pages that show a Secret or a connect link once must not be kept by the browser or a proxy.
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, private"
    return response


# A Secret or a connect link is shown once, on the page the POST redirects to: the POST keeps it
# encrypted in the session and the page takes it out, so a reload shows it no more (and creates
# nothing twice).
_SHOWN_ONCE = "apps.shown_once"


def _show_once(request, application, *, kind, value):
    request.session[_SHOWN_ONCE] = {"app_id": application.app_id, "kind": kind, "value": encrypt(value)}
    return redirect("apps:shown-once", app_id=application.app_id)


@login_required
@require_GET
def application_shown_once(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    shown = request.session.get(_SHOWN_ONCE) or {}
    if shown.get("app_id") != application.app_id:
        messages.info(request, "That was shown only once. If it was lost, replace the Secret or make a new link.")
        return redirect("apps:detail", app_id=application.app_id)
    del request.session[_SHOWN_ONCE]
    value = decrypt(shown["value"])
    if shown["kind"] == "connect-link":
        return _no_store(render(request, "apps/connect_link_created.html", {"application": application, "url": value}))
    context = {"application": application, "secret": value, "created": shown["kind"] == "created"}
    return _no_store(render(request, "apps/secret_once.html", context))


def _next_or(request, fallback):
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return fallback


# --- list and create ---------------------------------------------------------------------------


@login_required
@require_GET
def application_list(request):
    return render(request, "apps/list.html", selectors.application_lists_for_owner(request.user))


@login_required
@require_http_methods(["GET", "POST"])
def application_create(request):
    form = ApplicationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            application, secret = applications.application_create(
                owner=request.user,
                name=data["name"],
                callback_url=data["callback_url"],
                auth_style=data["auth_style"],
                token_prefix=data["token_prefix"],
                secret=data["secret"] or None,
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            return _show_once(request, application, kind="created", value=secret)
    status = HTTPStatus.BAD_REQUEST if form.errors else HTTPStatus.OK
    return render(request, "apps/create.html", {"form": form}, status=status)


# --- details -----------------------------------------------------------------------------------


def _delivery_page(request, application):
    return selectors.delivery_page_for_application(
        application,
        failed_only=request.GET.get("status") == DeliveryStatus.FAILED,
        before=request.GET.get("before"),
        after=request.GET.get("after"),
    )


def _log_context(request, application, page=None):
    """The delivery log's keys (health, the page of deliveries and its cursor links)."""
    failed_only = request.GET.get("status") == DeliveryStatus.FAILED
    page = page or _delivery_page(request, application)
    status = "status=failed&" if failed_only else ""
    return {
        "failed_only": failed_only,
        "deliveries": page.rows,
        "older_url": f"?{status}before={page.older}#deliveries" if page.older else None,
        "newer_url": f"?{status}after={page.newer}#deliveries" if page.newer else None,
        "health": selectors.delivery_health_for_application(application),
    }


def _detail_context(request, application, **extra):
    user = request.user
    context = {
        "application": application,
        "can_manage": selectors.application_can_manage(user, application),
        "links": list(selectors.app_links_for_owner(user, application)),
        "linkable": list(selectors.devices_linkable_for_owner(user, application)[:200]),
    }
    if context["can_manage"]:
        context.update(_log_context(request, application))
        context.update(
            {
                "signing_secret": applications.application_signing_secret(application),
                "signing_overlap_until": applications.signing_overlap_until(application),
                "other_devices": selectors.app_link_count_for_others(user, application),
                "settings_form": extra.pop("settings_form", None)
                or ApplicationSettingsForm(
                    initial={
                        "name": application.name,
                        "callback_url": application.callback_url,
                        "auth_style": application.auth_style,
                        "token_prefix": application.token_prefix,
                    }
                ),
                "secret_form": extra.pop("secret_form", None) or SecretReplaceForm(),
            }
        )
    else:
        context["connected"] = selectors.application_connected(user, application)
    context.update(extra)
    return context


@login_required
@require_GET
def application_detail(request, app_id):
    application = selectors.application_get_for_owner(request.user, app_id)
    response = render(request, "apps/detail.html", _detail_context(request, application))
    # The page shows the signing secret.
    return _no_store(response) if selectors.application_can_manage(request.user, application) else response


# The delivery log's regions refreshed in place (data-live in apps/detail.html).
LOG_FRAGMENTS = {"health": "apps/_delivery_health.html", "deliveries": "apps/_deliveries.html"}


@login_required
@require_GET
def application_deliveries_live(request, app_id):
    """The delivery log's health and page for `static/js/live.js`, for the page's query string: 304
    while the page's rows are as the browser holds them (portal/live.py). The owner's alone."""
    application = selectors.application_get_owned(request.user, app_id)
    page = _delivery_page(request, application)

    def fragments():
        context = {"application": application, **_log_context(request, application, page)}
        return {name: render_to_string(template, context, request) for name, template in LOG_FRAGMENTS.items()}

    return live.answer(request, selectors.delivery_log_version(application, page), fragments)


@login_required
@require_POST
def application_settings(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    form = ApplicationSettingsForm(request.POST)
    if form.is_valid():
        try:
            applications.application_update(application=application, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("apps:detail", app_id=application.app_id)
    application.refresh_from_db()
    context = _detail_context(request, application, settings_form=form, open_section="settings")
    return _no_store(render(request, "apps/detail.html", context, status=HTTPStatus.BAD_REQUEST))


@login_required
@require_POST
def application_secret_replace(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    form = SecretReplaceForm(request.POST)
    if form.is_valid():
        try:
            secret = applications.application_secret_replace(
                application=application, secret=form.cleaned_data["secret"]
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            return _show_once(request, application, kind="replaced", value=secret)
    context = _detail_context(request, application, secret_form=form, open_section="secret")
    return _no_store(render(request, "apps/detail.html", context, status=HTTPStatus.BAD_REQUEST))


@login_required
@require_POST
def application_signing_secret_rotate(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    applications.application_signing_secret_rotate(application=application)
    messages.success(
        request, "New signing secret. Update your receiver within 24 hours: until then the old one also signs."
    )
    return redirect(reverse("apps:detail", args=[application.app_id]) + "#signing")


@login_required
@require_POST
def application_pause_toggle(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    if application.paused_at:
        pending = applications.application_resume(application=application)
        messages.success(request, f"Deliveries resumed; {pending} waiting are being sent.")
    else:
        applications.application_pause(application=application, reason="Paused by the owner.")
        messages.success(request, "Deliveries paused. New events wait until you resume.")
    return redirect("apps:detail", app_id=application.app_id)


@login_required
@require_http_methods(["GET", "POST"])
def application_delete(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    if request.method == "POST":
        applications.application_delete(application=application)
        messages.success(request, f"{application.name} was deleted.")
        return redirect("apps:list")
    return render(request, "apps/delete.html", {"application": application})


@login_required
@require_POST
def connect_link_create(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    _, url = links.connect_link_create(application=application)
    return _show_once(request, application, kind="connect-link", value=url)


@login_required
@require_POST
def connection_remove(request, app_id):
    application = selectors.application_get_for_owner(request.user, app_id)
    links.connection_remove(application=application, user=request.user)
    messages.success(request, f"{application.name} was removed from your applications.")
    return redirect("apps:list")


# --- device links ------------------------------------------------------------------------------


def _device_from_post(request):
    try:
        return access.device_for(request.user, request.POST.get("device", ""), access.MANAGE)
    except (Http404, DjangoValidationError, ValueError):
        return None


def _link(request, application, *, unlink):
    device = _device_from_post(request)
    if device is None:
        messages.error(request, "Choose one of your devices.")
        return None
    action = links.device_unlink if unlink else links.device_link
    try:
        action(device=device, application=application, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return None
    if unlink:
        messages.success(request, f"{device.display_name} is no longer linked to {application.name}.")
    else:
        messages.success(request, f"{device.display_name} is linked to {application.name}.")
    return device


@login_required
@require_POST
def application_device_link(request, app_id):
    application = selectors.application_get_for_owner(request.user, app_id)
    _link(request, application, unlink=False)
    return redirect(_next_or(request, reverse("apps:detail", args=[application.app_id]) + "#devices"))


@login_required
@require_POST
def application_device_unlink(request, app_id):
    application = selectors.application_get_for_owner(request.user, app_id)
    _link(request, application, unlink=True)
    return redirect(_next_or(request, reverse("apps:detail", args=[application.app_id]) + "#devices"))


# --- deliveries --------------------------------------------------------------------------------


def _deliveries_url(application):
    return reverse("apps:detail", args=[application.app_id]) + "#deliveries"


@login_required
@require_POST
def delivery_retry(request, app_id, delivery_id):
    application = selectors.application_get_owned(request.user, app_id)
    delivery = selectors.delivery_get_for_application(application, delivery_id)
    try:
        fanout.delivery_retry(delivery=delivery)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The delivery is being sent again.")
    return redirect(_deliveries_url(application))


@login_required
@require_POST
def deliveries_replay(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    try:
        count = fanout.deliveries_replay_failed(application=application)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{count} failed deliveries are being sent again." if count else "Nothing failed.")
    return redirect(_deliveries_url(application))


@login_required
@require_POST
def delivery_send_test(request, app_id):
    application = selectors.application_get_owned(request.user, app_id)
    try:
        fanout.delivery_send_test(application=application)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "A test event (ping) is on its way. Reload in a few seconds to see the result.")
    return redirect(_deliveries_url(application))


# --- connect links -----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def connect(request, token):
    """A connect link: the consent page, then the application joins the user's list."""
    try:
        link = links.connect_link_get(token=token)
    except ApplicationError as exc:
        response = render(request, "apps/connect_invalid.html", {"message": exc.message}, status=HTTPStatus.NOT_FOUND)
        return _no_store(response)
    application = link.application
    if request.method == "POST":
        if "decline" in request.POST:
            messages.info(request, f"{application.name} was not added.")
            return redirect("apps:list")
        try:
            links.connect_link_accept(token=token, user=request.user)
        except ApplicationError as exc:
            response = render(request, "apps/connect_invalid.html", {"message": exc.message}, status=exc.status)
            return _no_store(response)
        messages.success(request, f"{application.name} is in your applications. Link the devices it may use.")
        return redirect(reverse("apps:detail", args=[application.app_id]) + "#devices")
    return _no_store(render(request, "apps/connect.html", {"application": application}))

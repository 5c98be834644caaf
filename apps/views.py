from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .selectors import application_get_for_owner, application_lists_for_owner


@login_required
def application_list(request):
    return render(request, "apps/list.html", application_lists_for_owner(request.user))


@login_required
def application_create(request):
    return render(request, "apps/list.html", {})


@login_required
def application_detail(request, app_id):
    application = application_get_for_owner(request.user, app_id)
    return render(request, "apps/list.html", {"application": application})


def connect(request, token):
    return render(request, "apps/list.html", {})


@login_required
def device_link(request):
    return render(request, "apps/list.html", {})


@login_required
def device_unlink(request):
    return render(request, "apps/list.html", {})

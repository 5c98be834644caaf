"""The portal's URLs plus the two baselines every HTTP benchmark is measured against.

Served by the same gunicorn as the portal in the same run, so figures are ratios, not absolutes:
- /bench/constant: a bare view returning a constant (the framework's ceiling);
- /bench/update: one ORM UPDATE by an indexed key (the shape of a health-check ping).
"""

from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from devices.models import Device
from portal.urls import handler400, handler403, handler404, handler500  # noqa: F401
from portal.urls import urlpatterns as portal_urlpatterns


@csrf_exempt
def constant(request):
    return HttpResponse(b"ok", content_type="text/plain")


@csrf_exempt
def update(request):
    Device.objects.filter(serial=request.GET.get("serial", "BENCH-00000000")).update(last_seen_at=timezone.now())
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/constant", constant),
    path("bench/update", update),
    *portal_urlpatterns,
]

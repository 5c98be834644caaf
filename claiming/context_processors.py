from django.urls import reverse


def claim_url(request):
    """Where to claim a device, for lower apps' pages (the device list's "Claim a device"): they
    may not name claiming's URLs themselves."""
    return {"claim_url": reverse("claiming:claim")}

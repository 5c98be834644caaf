from django.conf import settings


def branding(request):
    return {
        "portal_name": settings.PORTAL_NAME,
        "portal_logo_url": settings.PORTAL_LOGO_URL,
        "portal_support_email": settings.PORTAL_SUPPORT_EMAIL,
        "portal_primary_color": settings.PORTAL_PRIMARY_COLOR,
    }

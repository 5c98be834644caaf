from django.contrib import admin

from .models import ClaimCode, Device, Product

admin.site.register(Product)
admin.site.register(ClaimCode)
admin.site.register(Device)

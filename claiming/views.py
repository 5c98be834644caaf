from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def claim(request):
    return render(request, "claiming/claim.html")

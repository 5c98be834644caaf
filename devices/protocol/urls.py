app_name = "device-protocol"

urlpatterns = []

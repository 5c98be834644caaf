app_name = "apps-api"

urlpatterns = []

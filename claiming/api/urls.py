app_name = "claiming-api"

urlpatterns = []

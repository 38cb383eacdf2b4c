from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from webapp import api, api_compare, api_series, api_workers, views, views_experiments

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("models/", views.model_list, name="model-list"),
    path("models/<int:model_id>/", views.model_detail, name="model-detail"),
    path("models/<int:model_id>/experiments/", views.experiment_create, name="experiment-create"),
    path("experiments/", views_experiments.experiment_list, name="experiment-list"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment-detail"),
    path("compare/", views_experiments.compare, name="compare"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path("workers/", views.worker_list, name="worker-list"),
]


def _api(view):
    # DRF authenticates API calls itself (tokens too) and answers 401/403; the page login redirect must not.
    return login_not_required(view.as_view() if hasattr(view, "as_view") else view)


urlpatterns += [
    path("api/auth/token/", _api(obtain_auth_token), name="api-token"),
    path("api/models/", _api(api.ModelListCreate), name="api-models"),
    path("api/models/<int:model_id>/", _api(api.ModelDetail), name="api-model"),
    path("api/datasets/", _api(api.DatasetListCreate), name="api-datasets"),
    path("api/datasets/<int:dataset_id>/", _api(api.DatasetDetail), name="api-dataset"),
    path("api/datasets/<int:dataset_id>/previews/<str:name>", _api(api.DatasetPreview), name="dataset-preview"),
    path("api/workers/", _api(api_workers.WorkerList), name="api-workers"),
    path("api/experiments/", _api(api.ExperimentListCreate), name="api-experiments"),
    path("api/compare/", _api(api_compare.Compare), name="api-compare"),
    path("api/experiments/<int:experiment_id>/", _api(api.ExperimentDetail), name="api-experiment"),
    path("api/experiments/<int:experiment_id>/events/", _api(api.ExperimentEvents), name="api-events"),
    path("api/experiments/<int:experiment_id>/series/", _api(api_series.ExperimentSeries), name="api-series"),
    path("api/experiments/<int:experiment_id>/series.csv", _api(api_series.ExperimentSeriesCsv),
         name="api-series-csv"),
    path("api/experiments/<int:experiment_id>/artifacts/<int:artifact_id>/", _api(api.ArtifactDownload),
         name="api-artifact-download"),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required, login_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from webapp.api import chains as chains_api
from webapp.api import compare as compare_api
from webapp.api import datasets as datasets_api
from webapp.api import deletion as deletion_api
from webapp.api import experiments as experiments_api
from webapp.api import series as series_api
from webapp.api import tokens as tokens_api
from webapp.api import uploaded_models as models_api
from webapp.api import workers as workers_api
from webapp.pages import chains, datasets, deletion, experiments, home, labels, tokens, uploaded_models, workers

urlpatterns = [
    path("", home.home, name="home"),
    path("start/sample-model/", home.sample_model, name="sample-model"),
    path("start/sample-dataset/", home.sample_dataset, name="sample-dataset"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("models/", uploaded_models.model_list, name="model-list"),
    path("models/<int:model_id>/", uploaded_models.model_detail, name="model-detail"),
    path("models/<int:model_id>/delete/", deletion.model_delete, name="model-delete"),
    path("models/<int:model_id>/labels/", labels.model_labels, name="model-labels"),
    path("models/<int:model_id>/experiments/", uploaded_models.experiment_create, name="experiment-create"),
    path("models/<int:model_id>/student-size/", uploaded_models.student_size, name="student-size"),
    path("experiments/", experiments.experiment_list, name="experiment-list"),
    path("experiments/<int:experiment_id>/", experiments.experiment_detail, name="experiment-detail"),
    path("experiments/<int:experiment_id>/cancel/", experiments.experiment_cancel, name="experiment-cancel"),
    path("experiments/<int:experiment_id>/delete/", deletion.experiment_delete, name="experiment-delete"),
    path("experiments/<int:experiment_id>/labels/", labels.experiment_labels, name="experiment-labels"),
    path("experiments/delete/", deletion.experiments_delete, name="experiments-delete"),
    path("experiments/<int:experiment_id>/rerun/", uploaded_models.experiment_rerun, name="experiment-rerun"),
    path("compare/", experiments.compare, name="compare"),
    path("models/<int:model_id>/chain/", chains.chain_create, name="chain-create"),
    path("chains/", chains.chain_list, name="chain-list"),
    path("chains/<int:chain_id>/", chains.chain_detail, name="chain-detail"),
    path("chains/<int:chain_id>/cancel/", chains.chain_cancel, name="chain-cancel"),
    path("chains/<int:chain_id>/resume/", chains.chain_resume, name="chain-resume"),
    path("chains/<int:chain_id>/delete/", deletion.chain_delete, name="chain-delete"),
    path("datasets/", datasets.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/", datasets.dataset_detail, name="dataset-detail"),
    path("datasets/<int:dataset_id>/delete/", deletion.dataset_delete, name="dataset-delete"),
    path("workers/", workers.worker_list, name="worker-list"),
    path("account/tokens/", tokens.token_list, name="token-list"),
    path("account/tokens/<str:token_key>/revoke/", tokens.token_revoke, name="token-revoke"),
]


def _api(view):
    # DRF authenticates API calls itself (tokens too) and answers 401/403; the page login redirect must not.
    return login_not_required(view.as_view() if hasattr(view, "as_view") else view)


urlpatterns += [
    path("api/schema/", _api(SpectacularAPIView), name="api-schema"),
    # A page: a visitor who is not signed in goes to the login page (DRF views exempt themselves from the login
    # middleware); its script comes as a separate file, which the content security policy allows.
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/auth/token/", _api(tokens_api.TokenCreate), name="api-token"),
    path("api/auth/token/revoke/", _api(tokens_api.TokenRevoke), name="api-token-revoke"),
    path("api/models/", _api(models_api.ModelListCreate), name="api-models"),
    path("api/models/<int:model_id>/", _api(models_api.ModelDetail), name="api-model"),
    path("api/models/delete/", _api(deletion_api.ModelsDelete), name="api-models-delete"),
    path("api/datasets/", _api(datasets_api.DatasetListCreate), name="api-datasets"),
    path("api/datasets/<int:dataset_id>/", _api(datasets_api.DatasetDetail), name="api-dataset"),
    path("api/datasets/delete/", _api(deletion_api.DatasetsDelete), name="api-datasets-delete"),
    path("api/datasets/<int:dataset_id>/previews/<str:name>", _api(datasets_api.DatasetPreview),
         name="dataset-preview"),
    path("api/workers/", _api(workers_api.WorkerList), name="api-workers"),
    path("api/experiments/", _api(experiments_api.ExperimentListCreate), name="api-experiments"),
    path("api/compare/", _api(compare_api.Compare), name="api-compare"),
    path("api/chains/", _api(chains_api.ChainListCreate), name="api-chains"),
    path("api/chains/<int:chain_id>/", _api(chains_api.ChainDetail), name="api-chain"),
    path("api/chains/<int:chain_id>/cancel/", _api(chains_api.ChainCancel), name="api-chain-cancel"),
    path("api/chains/<int:chain_id>/resume/", _api(chains_api.ChainResume), name="api-chain-resume"),
    path("api/experiments/delete/", _api(deletion_api.ExperimentsDelete), name="api-experiments-delete"),
    path("api/experiments/<int:experiment_id>/", _api(experiments_api.ExperimentDetail), name="api-experiment"),
    path("api/experiments/<int:experiment_id>/cancel/", _api(experiments_api.ExperimentCancel),
         name="api-experiment-cancel"),
    path("api/experiments/<int:experiment_id>/rerun/", _api(experiments_api.ExperimentRerun),
         name="api-experiment-rerun"),
    path("api/experiments/<int:experiment_id>/events/", _api(experiments_api.ExperimentEvents), name="api-events"),
    path("api/experiments/<int:experiment_id>/series/", _api(series_api.ExperimentSeries), name="api-series"),
    path("api/experiments/<int:experiment_id>/series.csv", _api(series_api.ExperimentSeriesCsv),
         name="api-series-csv"),
    path("api/experiments/<int:experiment_id>/bundle/", _api(experiments_api.ExperimentBundle),
         name="api-experiment-bundle"),
    path("api/experiments/<int:experiment_id>/artifacts/<int:artifact_id>/", _api(experiments_api.ArtifactDownload),
         name="api-artifact-download"),
]

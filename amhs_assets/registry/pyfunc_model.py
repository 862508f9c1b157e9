"""The code file of the MLflow pyfunc ("model from code"): MLflow runs it to build the model, so
a registered version stores this source instead of a pickled object. Not imported by the
package itself."""

from mlflow.models import set_model

from amhs_assets.registry.predictor import AmhsPyfuncModel

set_model(AmhsPyfuncModel())

"""The predictor function as a WSGI app: `gunicorn --chdir functions/predictor main:app`."""

from handler import PredictorSettings, create_predictor_app

app = create_predictor_app(PredictorSettings.from_env())

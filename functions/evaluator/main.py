"""The evaluator function as a WSGI app: `gunicorn --chdir functions/evaluator main:app`."""

from handler import EvaluatorSettings, handle
from troupe.function import create_app

app = create_app(handle, settings_class=EvaluatorSettings)

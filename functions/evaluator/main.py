"""The evaluator function as a WSGI app: `gunicorn --chdir functions/evaluator main:app`."""

from handler import CONSUMES, EvaluatorSettings, handle
from troupe.function import create_app

app = create_app(handle, consumes=CONSUMES, settings_class=EvaluatorSettings)

"""The dead-letters sink as a WSGI app: `gunicorn --chdir functions/dead-letters main:app`."""

from handler import handle
from troupe.function import ANY, Settings, create_app

# Dead letters may be of any type, ours or a subscriber's, and are often invalid: that may
# be why they were dead-lettered. They are recorded as they are, never refused.
app = create_app(
    handle,
    consumes=ANY,
    settings_class=Settings,
    validate_incoming=False,
    deduplicate=False,
)

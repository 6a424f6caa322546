from handler import handle
from troupe.function import Settings, create_app

# Dead letters may be of any type, ours or a subscriber's, and are often invalid: that may
# be why they were dead-lettered. They are recorded as they are, never refused.
app = create_app(
    handle,
    settings_class=Settings,
    accept_unknown_types=True,
    validate_incoming=False,
    deduplicate=False,
)

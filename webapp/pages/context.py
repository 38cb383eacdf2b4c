"""Template context every page gets."""
from optimizers import events


def event_contract(request) -> dict:
    """The event record's names for the pages' JavaScript (static/js/events.js reads them): served from the one
    Python definition, so the two sides cannot drift apart."""
    return {"event_contract": events.contract()}

"""The engine facade; the only package that imports SpiffWorkflow."""
from app.engine import clock as _clock  # noqa: F401  (routes SpiffWorkflow's timers through our clock)
from app.engine.inspection import element_states, strongest
from app.engine.migration import MigrationOutcome, MigrationRefused, migrate
from app.engine.runner import (
    EngineContext,
    HandlerCall,
    StepOutcome,
    cancel,
    check,
    complete,
    data_hash,
    fire_timers,
    load_spec,
    open_rows_of,
    record_failure,
    retry,
    stalled_at,
    start,
)
from app.engine.validation import (
    CallSite,
    DiagramOutline,
    ParsedDiagram,
    outline,
    parse_diagram,
    parse_duration,
    parse_xml,
)
from app.engine.working_days import add_working_days, working_days_between

__all__ = [
    "EngineContext", "HandlerCall", "ParsedDiagram", "StepOutcome", "cancel", "check", "complete", "data_hash",
    "CallSite", "DiagramOutline", "outline",
    "record_failure", "stalled_at",
    "element_states", "strongest",
    "fire_timers", "open_rows_of", "load_spec", "parse_diagram", "parse_duration", "retry", "start", "add_working_days",
    "MigrationOutcome", "MigrationRefused", "migrate", "parse_xml",
    "working_days_between",
]

"""What every handler receives and returns; handlers never import Flask and never commit.
The types live with the platform's registry (app/services/workflow/registry.py), which handlers fill."""
from app.services.workflow.registry import Handler, HandlerContext, HandlerError

__all__ = ["Handler", "HandlerContext", "HandlerError"]

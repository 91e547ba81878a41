"""The helpers every handler may call, in one base class for the handler mixins."""

from __future__ import annotations

from .output import Output
from .process import StopReport
from .questioner import Confirming
from .targets import Targets


class CommandParts(Targets, Confirming, Output, StopReport):
    """Targets, confirmation, printing and the stop report: what the handlers build on."""

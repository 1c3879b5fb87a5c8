"""The highlights product: new videos + a trained run -> the best moments as JSON, CSV, clips and a report.

:mod:`.find` (the whole job), :mod:`.moments` (scores -> moments), :mod:`.clips` (cutting), :mod:`.report`
(the HTML page).
"""
from .find import HighlightsResult, VideoHighlights, find_highlights

__all__ = ["HighlightsResult", "VideoHighlights", "find_highlights"]

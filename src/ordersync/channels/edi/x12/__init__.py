"""ANSI X12: separators from the ISA, segments streamed from any file-like source, envelopes
(ISA/IEA, GS/GE, ST/SE) checked as they close, one transaction set in memory at a time."""

from ordersync.channels.edi.x12.envelope import (
    GroupClosed,
    GroupHeader,
    InterchangeClosed,
    InterchangeHeader,
    TransactionSet,
    read_interchanges,
)
from ordersync.channels.edi.x12.tokens import Segment, Separators, X12SyntaxError, iter_segments

__all__ = ["GroupClosed", "GroupHeader", "InterchangeClosed", "InterchangeHeader", "Segment", "Separators",
           "TransactionSet", "X12SyntaxError", "iter_segments", "read_interchanges"]

"""The EDI channel: trading partners' X12 (and later EDIFACT) documents in and out (issue 15).

``x12``: a streaming tokenizer and envelope reader of our own, modelling only what we trade.
"""

"""UN/EDIFACT D.96A: syntax, interchanges and the messages we trade."""

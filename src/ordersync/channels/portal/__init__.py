"""The buyer portal: pages for a buyer's account (:mod:`.pages`) and its cart (:mod:`.cart`)."""

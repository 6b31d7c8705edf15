"""Services the experience API, the pages and the workbench call directly."""

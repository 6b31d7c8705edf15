"""Experience APIs (FastAPI): ``/v1`` for buyers and dealer apps, ``/v1/ops`` for staff."""

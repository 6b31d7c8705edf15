"""Durable state: SQLAlchemy Core tables, Alembic migrations, engines for SQLite and PostgreSQL, and the
unit of work that writes state and outbox events in one transaction."""

"""The store: SQLAlchemy models, migrations and the repository every front end writes to."""

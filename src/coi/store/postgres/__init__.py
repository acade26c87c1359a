"""The PostgreSQL store (asyncpg): many `coi serve` processes on one database."""

"""The embedded PostgreSQL server and the demo ABParts application and environments."""

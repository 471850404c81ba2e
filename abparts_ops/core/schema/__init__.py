"""The model of a schema: what it is, how it is read, rendered, compared and ordered.

One object kind lives in one place: a module of ``kinds/`` (``kinds/table.py``,
``kinds/index.py``, ...) holds its catalog read and dependency address (SQL), its
registry entry, and the renderers that entry registers (create, drop, and whether a
change loses data); adding a kind is one module. Around the registry: ``catalog_sql``
assembles the reads and ``introspect`` takes the snapshot (``model``), ``diff`` compares
two, ``ddl`` assembles the kinds' renderers into the canonical DDL and its drops,
ordered by ``order`` (the catalog's dependencies, ``kind_order``'s phases and per-kind
orders as tie-breakers) over the ``steps`` the renderers return; ``dump`` and
``dump_parity`` compare with ``pg_dump``.
"""

"""``barkwatch hub``: many listeners, one home. The listeners (nodes) publish their barks to an MQTT broker;
the hub gathers them into one SQLite database and one set of pages, and places each bark in the room whose
microphone heard it loudest.

- ``merge``: pure: the events of several nodes that start within about a second are one bark;
- ``store``: the database (SQLite, WAL): events stored once by id, the nodes, the queries of the pages;
- ``messages``: pure: what an MQTT message or a node's API record must hold to be stored;
- ``subscriber``: the MQTT client (persistent session, QoS 1), the writer, and the backfill from the nodes'
  web API for what the broker did not keep;
- ``pages`` and ``web``: the pages and API, behind the ``web`` command's guard.

The hub imports from ``service`` (the web guard, the clip rules); ``service`` never imports the hub.
"""

"""The one wiring point: pages, the socket, integrations' routes, templates and the bus."""

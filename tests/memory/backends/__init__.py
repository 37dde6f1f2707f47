"""Per-backend fixture factories for the shared sink contract suite: `make_<backend>_sink(namespace)`."""

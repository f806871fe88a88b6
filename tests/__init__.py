"""bedflow test suite (a package, so `tests.helpers` is never shadowed by an installed `tests`)."""

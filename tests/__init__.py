"""The notifier test suite; a package so that `tests.support` imports the same everywhere."""

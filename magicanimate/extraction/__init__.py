"""extraction subpackage."""

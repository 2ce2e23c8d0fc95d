"""Real servers started by the tests on loopback, one module per program."""

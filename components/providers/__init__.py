"""Dynamic providers: module-level classes with no captured clients.

Pulumi pickles each provider with dill. The classes here hold no state;
every method takes what it needs from its inputs and opens its own
connections, and the real work lives in `mailbridge.deploy`.
"""

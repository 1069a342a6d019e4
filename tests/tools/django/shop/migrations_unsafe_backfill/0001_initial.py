"""The safe package's initial migration, so this package continues the same history."""
from importlib import import_module

Migration = import_module("shop.migrations.0001_initial").Migration

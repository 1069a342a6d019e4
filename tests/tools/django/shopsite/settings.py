"""Settings for the tool_django test project: one app, one database, both from the
environment. DATABASE_URL is postgres://user:password@host:port/dbname; SHOP_MIGRATIONS
names the migrations package of the app `shop` (the safe one by default, or one of the
unsafe ones the test expects the guard to stop)."""
import os
from urllib.parse import unquote, urlsplit

url = urlsplit(os.environ["DATABASE_URL"])

SECRET_KEY = "tool-django-test-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname,
        "PORT": url.port,
    }
}
MIGRATION_MODULES = {"shop": os.environ.get("SHOP_MIGRATIONS", "shop.migrations")}

"""The one error tree of gmv_sql. Every message is one line: the bad value, then the way out."""


class GmvError(Exception):
    """Base of every error a user can cause or fix. The CLI prints it as one line and exits 1."""


class ConfigError(GmvError):
    """Bad settings: database URL, GMV_HOME, options that contradict each other."""


class DatabaseError(GmvError):
    """The database cannot be reached, lacks pgvector, or is not migrated."""


class InputError(GmvError):
    """A file, manifest row, image or vector the user gave us is unusable."""


class ConflictError(GmvError):
    """The request contradicts what is already stored (e.g. same bytes, two owners)."""


class NotFoundError(GmvError):
    """A named thing (space, scheme, image, period) does not exist."""

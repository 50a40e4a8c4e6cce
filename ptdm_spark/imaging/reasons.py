"""Stable reason codes of the ``rejects`` table. Analysts filter on these: never rename one."""

EMPTY = "empty"  # zero bytes
NOT_IMAGE = "not_image"  # no known image signature and no decoder accepts it
TRUNCATED = "truncated"  # the file ends before its image data does
CORRUPT = "corrupt"  # a known format, complete, but the decoder rejects it
TOO_LARGE = "too_large"  # byte size or header-declared pixel count above the configured limit
TOO_SMALL = "too_small"  # a side below the configured minimum
UNSUPPORTED = "unsupported"  # a recognised format or file kind we do not decode
UNREADABLE = "unreadable"  # the object could not be read (permission, vanished, dangling link, I/O error)
SKIPPED = "skipped"  # left out on purpose: ingest.extensions / skip_hidden, a link loop, an unsafe archive link

ALL = (EMPTY, NOT_IMAGE, TRUNCATED, CORRUPT, TOO_LARGE, TOO_SMALL, UNSUPPORTED, UNREADABLE, SKIPPED)

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

# ptdm collect (HTTP): see io/fetch.py
HTTP_404 = "http_404"  # 404 / 410: not there (not retried)
HTTP_4XX = "http_4xx"  # any other 4xx (408/429 are retried by later runs)
HTTP_5XX = "http_5xx"  # server error (retried)
TIMEOUT = "timeout"  # connect or read timeout (retried)
DNS = "dns"  # the host name does not resolve (retried)
CONNECTION = "connection"  # refused, reset, or a body cut short (retried)
REDIRECT_LOOP = "redirect_loop"  # a URL seen twice, or more than collect.max_redirects redirects
ROBOTS = "robots"  # X-Robots-Tag: noai / noimageai (not retried)
BAD_URL = "bad_url"  # not an http(s) URL

COLLECT = (HTTP_404, HTTP_4XX, HTTP_5XX, TIMEOUT, DNS, CONNECTION, REDIRECT_LOOP, ROBOTS, BAD_URL)

ALL = (EMPTY, NOT_IMAGE, TRUNCATED, CORRUPT, TOO_LARGE, TOO_SMALL, UNSUPPORTED, UNREADABLE, SKIPPED, *COLLECT)

"""A throttled-function decorator for throttledb, with redis-py.

This is the README's Python example; test/clients runs it (see
test_redis_py.py), so it is known to work.

    r = redis.Redis(port=6380, password="s3cret")

    @throttled(r, "api-token", interval_ms=1000, max_pending=10)
    def call_api(x):
        ...

Every call of call_api takes a slot of the throttle "api-token": at most
one call per second across every process that uses the same key. A call
that gets a slot in the future sleeps until then; a call that is denied
(max_pending slots are already reserved) waits the time the server says and
asks again.
"""

import functools
import random
import time


def throttled(r, key, interval_ms, max_pending, slop_ms=None):
    """Decorate a function so that each call first acquires a slot of the
    throttle key (THROTTLE.ACQUIRE key interval_ms max_pending)."""
    args = ["THROTTLE.ACQUIRE", key, interval_ms, max_pending]
    if slop_ms is not None:
        args += ["SLOP", slop_ms]

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            while True:
                granted, wait_ms, valid_at, expires_at, _ = r.execute_command(*args)
                # Measure from when the reply arrived: never start early.
                arrived = time.monotonic()
                if not granted:
                    # Denied: retry when a call could succeed, with jitter
                    # so that waiting workers do not return all at once.
                    time.sleep(wait_ms / 1000 * (1 + random.random() / 10))
                    continue
                time.sleep(wait_ms / 1000)
                # A permit is good until expires_at; a process paused past
                # it drops the permit rather than crowd the next slot.
                late_ms = (time.monotonic() - arrived) * 1000 - wait_ms
                if late_ms > expires_at - valid_at:
                    continue
                return fn(*a, **kw)

        return wrapper

    return decorate

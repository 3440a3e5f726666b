package client

import (
	"context"
	"time"
)

// SetSleep replaces the sleep Wait uses, so tests can make it overshoot.
func SetSleep(c *Client, f func(ctx context.Context, d time.Duration) error) { c.sleep = f }

// Sleep is the real sleep.
var Sleep = sleepCtx

// SetNow replaces the clock the client reads, so tests can make time pass.
func SetNow(c *Client, f func() time.Time) { c.now = f }

// TokenRetryLimit is how long after a first attempt Wait resends it.
const TokenRetryLimit = tokenRetryLimit

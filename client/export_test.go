package client

import (
	"context"
	"time"
)

// SetSleep replaces the sleep Wait uses, so tests can make it overshoot.
func SetSleep(c *Client, f func(ctx context.Context, d time.Duration) error) { c.sleep = f }

// Sleep is the real sleep.
var Sleep = sleepCtx

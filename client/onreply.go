package client

// OnReply calls fn with the outcome of every THROTTLE.ACQUIRE (or
// THROTTLE.PEEK) made with this option, before the call that made it goes
// on: the permit (granted now, a reservation, or a denial) or the error
// (ctx's included).
// With Wait, Limiter.Do and Throttle, which may send several, fn sees each
// one, including the denials and ErrOutcomeUnknown they retry on their own,
// so a caller can log or count every reply and not only the permit it is
// finally given. A call refused before anything is sent (ErrInvalidArgument)
// is not reported.
//
// fn runs on the calling goroutine; it must not block for long, since the
// caller's wait for its slot is measured from the reply's arrival.
func OnReply(fn func(p Permit, err error)) AcquireOption {
	return func(o *acquireOpts) { o.onReply = append(o.onReply, fn) }
}

// notifyReply reports one command's outcome to the OnReply functions among
// opts.
func notifyReply(opts []AcquireOption, p Permit, err error) {
	var o acquireOpts
	for _, f := range opts {
		f(&o)
	}
	for _, fn := range o.onReply {
		fn(p, err)
	}
}

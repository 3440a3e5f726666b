// Package latency records durations from many goroutines into fixed-size
// log-linear histograms, cheaply enough to stay on in a server: recording is
// a few atomic adds, and the memory (about 31 KiB per histogram) does not
// grow however long the server (or a benchmark) runs. The server's INFO
// latency and `throttledb bench` both use it.
package latency

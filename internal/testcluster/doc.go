// Package testcluster starts throttledb nodes and clusters for tests: in
// process (StartNode, Start), on 127.0.0.1:0 ports with data in t.TempDir(),
// stopped by t.Cleanup. Helpers wait for conditions instead of sleeping.
package testcluster

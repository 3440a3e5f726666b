// Package testcerts makes throwaway certificate authorities and certificates
// for tests: TLS for nodes, clients and peers, on loopback addresses.
package testcerts

// Package rpc serves Dux's APIs: gRPC (the State and Cluster services of
// dux.v1, the standard health service and server reflection) and HTTP/JSON
// under /v1/. Every handler does the same three things: decode the request,
// call the Backend, map the error through one table (errors.go).
package rpc

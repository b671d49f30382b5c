// Package server lets other processes use a store that one process owns.
//
// bbolt admits one process per file. The owner (evstore serve, evstore
// replicate following the log, or an application that embeds the store)
// serves an HTTP/JSON API on a Unix socket beside the database file, mode
// 0600, and optionally on TCP behind a bearer token. Anything that speaks
// HTTP can then append with expected versions, run a registered command
// with an idempotency key, read a stream or the log, list streams, follow
// the log as Server-Sent Events, and ask for status, stats and health. [Client] is the Go
// side of the same API; the evstore CLI uses it when the file is locked.
//
// # Basics
//
//	store, _ := local.Open("app.db", local.Options{})
//	srv, err := server.Listen(store, server.Options{}) // app.db.sock, 0600
//	if err != nil { … }
//	go srv.Serve(ctx)                                  // until ctx ends
//
// [Handler] is the bare http.Handler, for a program that runs its own
// http.Server. The API is documented in docs/api.md.
//
// # Invariants
//
//   - A request is answered only after what it wrote is durable (the store
//     acknowledges only durable commits); an error answer means nothing was
//     written, except for a connection cut after the request was sent,
//     which a caller resolves by retrying with the same idempotency key.
//   - Every malformed request gets a 4xx with a JSON body {"error", "code"}
//     naming the problem; no input crashes the server.
//   - A TCP listener always requires the token; the token is compared in
//     constant time. The socket relies on its 0600 mode (and, on Linux, on
//     the peer's user id) instead.
//   - Bodies are capped (Options.MaxBodyBytes), reads are paged
//     (Options.MaxPage), the list of streams is written as it is read (a
//     list cut short lacks its closing "]}", and [Client.Streams] reports
//     it), and every request but subscribe has a deadline
//     (Options.RequestTimeout).
//
// # Caveats
//
//   - The socket path is the database path plus ".sock". A socket left by
//     a killed owner is removed by the next owner; a client that finds no
//     one listening treats it as stale.
//   - Unix socket paths are limited to about 100 bytes by the OS; a
//     deeper database path needs Options.Socket.
//   - Event data travels as JSON: payloads that are not JSON are returned as
//     strings with data_encoding "utf-8" or "base64", as the CLI prints them.
//     A stored payload that is the JSON literal null reads back as no data.
//   - Subscribe streams until the client goes away or the server shuts
//     down; a client resumes with Last-Event-ID (the last position it saw).
package server

// Package resp is rconn's one RESP2/RESP3 reader: a streaming, non-allocating Scanner that
// finds where every value starts and ends, chunk by chunk, and Inline, which splits inline
// commands by Redis's own quoting rules (sdssplitargs).
//
// Every user plugs into the same state machine: pkg/cluster's bounded reply validator
// (LimitConn: its Limits and per-command caps become Scanner.Lim, its request tracker reads
// the commands go-redis writes with Scanner.Request), and rconn-proxy's reply scanner,
// request scanner and topology value parser (Scanner.Watch and Scanner.Capture). It is
// hand-written on purpose: it must sit below go-redis's reader and see a header before
// anything allocates what it declares, and walk values of any size (a 512 MB bulk is
// skipped, never held) across arbitrary chunk boundaries; no maintained Go RESP library
// streams without materializing values (redcon, rueidis and go-redis's reader all do).
//
// To change how RESP is read (a new type byte, a new limit), edit scanner.go; for inline
// commands, inline.go. FuzzScannerUsersAgree (in pkg/proxy, which sees all four users)
// checks that every user agrees on where each value starts and ends.
package resp

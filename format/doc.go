// Package format defines evstore's event records and their binary encodings.
//
// # Basics
//
// [EventData] is what a caller asks to append; [Event] is what the log
// recorded: the same fields plus the global position, the version within its
// stream, a UUIDv7 id and the commit time. [AppendRecord] encodes an Event into
// the record stored under its position in the local log, and [DecodeRecord]
// turns the bytes back into an Event. The byte layout is documented in
// docs/format.md.
//
// [EncodeFrame] and [DecodeFrame] batch consecutive records into one
// self-checking blob (the replicator's frames layout); [ExportWriter] and
// [ExportReader] write and read an export file, frames between a header and
// a trailer with every byte under a checksum. An Event's JSON form
// ([Event.MarshalJSON]) embeds a JSON payload as JSON and other payloads as
// a string with data_encoding "utf-8" or "base64".
//
// # Invariants
//
//   - A record carries a CRC-32C (Castagnoli) of everything after the checksum
//     field. DecodeRecord verifies it before it trusts any length, so a torn or
//     flipped record is reported as [ErrCorrupt] with its position and never
//     returned as data.
//   - The position is not stored inside a record: it is the record's key in the
//     log (and implied by order inside a batch frame). Positions and versions
//     start at 1; 0 means "none".
//   - Encoding is deterministic: metadata is written sorted by key.
//
// # Caveats
//
// The JSON form keeps a JSON payload's value, not its bytes: it comes back
// compacted. Use records, frames or export files for byte-exact copies.
//
// This package is a leaf: it knows nothing of bbolt or PostgreSQL. Limits that
// depend on configuration (the maximum payload size) are checked by callers
// with [ValidateEventData]; the decoder checks only structural limits.
package format

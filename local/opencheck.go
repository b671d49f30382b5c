package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
)

// bbolt asserts (panics) when a page it follows lies past the end of the
// file, and some of those panics happen on goroutines of its own, where
// neither we nor an embedding application can recover. A truncated file is
// the most common damage (an interrupted copy, a full disk), so Open checks
// for it first, from bbolt's meta pages: a file must be at least as long as
// the high-water mark its newest valid meta page records.
//
// The meta page layout is bbolt's format version 2, unchanged since 2014:
// a 16-byte page header, then magic, version, page size, flags (uint32
// each), root bucket (16 bytes), freelist page, high-water mark, txid
// (uint64 each) and an FNV-64a checksum of the fields before it, in the
// host's byte order.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltPageHeader = 16
	boltMetaSize   = 64
)

// checkTruncated returns an ErrCorruptStore error if the file at path is
// shorter than bbolt's metadata says. Files it cannot judge (new, empty,
// not bbolt at all) pass: bbolt itself reports those.
func checkTruncated(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // bbolt's open reports it with the right words
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return nil
	}
	var best struct {
		ok        bool
		txid, hwm uint64
		pageSize  uint32
	}
	// Meta page 0 is at offset 0; meta page 1 one page further, and the
	// page size is in meta 0 (or, if that one is damaged, a power of two
	// to try).
	offsets := []int64{0}
	var buf [boltPageHeader + boltMetaSize]byte
	for i := 0; i < len(offsets); i++ {
		if _, err := f.ReadAt(buf[:], offsets[i]); err != nil && !errors.Is(err, io.EOF) {
			return nil
		}
		m := buf[boltPageHeader:]
		ne := binary.NativeEndian
		h := fnv.New64a()
		h.Write(m[:56])
		valid := ne.Uint32(m[0:]) == boltMagic && ne.Uint32(m[4:]) == boltVersion && h.Sum64() == ne.Uint64(m[56:])
		if valid {
			ps := ne.Uint32(m[8:])
			if txid := ne.Uint64(m[48:]); !best.ok || txid > best.txid {
				best.ok, best.txid, best.hwm, best.pageSize = true, txid, ne.Uint64(m[40:]), ps
			}
			if i == 0 {
				offsets = append(offsets, int64(ps))
			}
		} else if i == 0 {
			for ps := int64(1024); ps <= 65536; ps *= 2 {
				offsets = append(offsets, ps)
			}
		}
	}
	if !best.ok {
		return nil
	}
	if need := int64(best.hwm) * int64(best.pageSize); info.Size() < need {
		return fmt.Errorf("%w: the file is %d bytes but its metadata needs %d: it was truncated (an interrupted copy or a full disk?)", ErrCorruptStore, info.Size(), need)
	}
	return nil
}

// checkRegular refuses a path that exists but is not a regular file (after
// following symlinks), with what it is instead.
func checkRegular(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return nil // missing: created; other errors: bbolt's open words them
	}
	var what string
	switch m := info.Mode(); {
	case m.IsRegular():
		return nil
	case m.IsDir():
		what = "a directory"
		return &OpenError{Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotStore, what), Hint: "name a file (a new one is created), not a directory"}
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeDevice != 0:
		what = "a device"
	default:
		what = "not a regular file"
	}
	return &OpenError{Path: path, Err: fmt.Errorf("%w: it is %s", ErrNotStore, what), Hint: "name a regular file (a new one is created)"}
}

// looksLikeBolt reports whether the file at path has the shape of a bbolt
// file even though neither of its meta pages is valid: a length of whole
// pages and, after the meta pages, page headers that carry their own page
// numbers. It tells a damaged database from a file that never was one.
func looksLikeBolt(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false
	}
	var hdr [boltPageHeader]byte
	for ps := int64(1024); ps <= 65536; ps *= 2 {
		if info.Size() < 4*ps || info.Size()%ps != 0 {
			continue
		}
		pages := min(info.Size()/ps, 64)
		good := 0
		for id := int64(2); id < pages; id++ {
			if _, err := f.ReadAt(hdr[:], id*ps); err != nil {
				break
			}
			// A page header is id (uint64), flags (uint16), count
			// (uint16), overflow (uint32), in the host's byte order.
			// Overflow pages of a larger page carry no header.
			flags := binary.NativeEndian.Uint16(hdr[8:])
			if binary.NativeEndian.Uint64(hdr[:]) == uint64(id) && (flags == 0x01 || flags == 0x02 || flags == 0x10) {
				good++
			}
		}
		if good >= 2 {
			return true
		}
	}
	return false
}

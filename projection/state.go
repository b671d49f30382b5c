package projection

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// A projection's key space holds its state under one key and the
// projection's own keys under another prefix, so dropping the space drops
// both at once (Rebuild) and no key of the projection can collide with the
// state.
const (
	prefixState = 0x00
	prefixData  = 0x01
)

var keyState = []byte{prefixState, 's'}

// spacePrefix names the key spaces of projections in the local store.
const spacePrefix = "projection/"

// Kinds of projection, as recorded in their state.
const (
	KindInStore  = "in-store" // Run: the model is the key space, exactly once
	KindExternal = "external" // RunHandler: the model lives elsewhere, at least once
)

// state is what a projection's key space records about it:
//
//	version(1)=1 kind(1) position(8) updated(8, unix ns) error-position(8) error-message(rest)
//
// all integers big-endian. error-position 0 means no error.
type state struct {
	found    bool // the record exists
	kind     string
	position uint64 // last position applied (or, external, handled)
	updated  time.Time
	errPos   uint64 // position of the event that failed, 0 if none
	errMsg   string
}

const stateHeader = 26

func (s state) appendTo(dst []byte) []byte {
	kind := byte(0)
	if s.kind == KindExternal {
		kind = 1
	}
	dst = append(dst, 1, kind)
	dst = binary.BigEndian.AppendUint64(dst, s.position)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.updated.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, s.errPos)
	return append(dst, s.errMsg...)
}

var errBadState = errors.New("projection state record is damaged")

func decodeState(b []byte) (state, error) {
	if b == nil {
		return state{kind: KindInStore}, nil
	}
	if len(b) < stateHeader {
		return state{}, fmt.Errorf("%w: %d bytes, want at least %d", errBadState, len(b), stateHeader)
	}
	if b[0] != 1 {
		return state{}, fmt.Errorf("%w: unknown version %d", errBadState, b[0])
	}
	s := state{
		found:    true,
		position: binary.BigEndian.Uint64(b[2:]),
		updated:  time.Unix(0, int64(binary.BigEndian.Uint64(b[10:]))).UTC(),
		errPos:   binary.BigEndian.Uint64(b[18:]),
		errMsg:   string(b[stateHeader:]),
	}
	switch b[1] {
	case 0:
		s.kind = KindInStore
	case 1:
		s.kind = KindExternal
	default:
		return state{}, fmt.Errorf("%w: unknown kind %d", errBadState, b[1])
	}
	if !utf8.ValidString(s.errMsg) {
		return state{}, fmt.Errorf("%w: error message is not UTF-8", errBadState)
	}
	return s, nil
}

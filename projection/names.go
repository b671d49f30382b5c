package projection

import (
	"fmt"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// MaxNameBytes is the longest projection name.
const MaxNameBytes = 200

// MaxKeyBytes is the longest key a projection may use.
const MaxKeyBytes = local.MaxSpaceKeyBytes - 1

// ValidateName reports whether name can name a projection: 1 to 200 bytes
// of valid UTF-8 without control characters. The name keys the
// projection's checkpoint and key space, so it must stay the same across
// releases.
func ValidateName(name string) error {
	return format.ValidateName("projection name", name, MaxNameBytes)
}

func checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return &format.InvalidError{Field: "key", Reason: "must not be empty"}
	case len(key) > MaxKeyBytes:
		return &format.InvalidError{Field: "key", Reason: fmt.Sprintf("is %d bytes, the limit is %d", len(key), MaxKeyBytes)}
	}
	return nil
}

func spaceOf(name string) string { return spacePrefix + name }

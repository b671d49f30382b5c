package projection

import (
	"fmt"
	"strings"
	"time"

	"github.com/evstore/evstore/local"
)

// States a projection can be in, as [Info.State] reports them.
const (
	StateCaughtUp = "caught up" // its checkpoint is the head
	StateBehind   = "behind"    // events wait to be applied
	StateFailed   = "failed"    // an event failed; see Info.Error
)

// Info is a projection's status, read from the store.
type Info struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`     // KindInStore or KindExternal
	Position uint64 `json:"position"` // last event applied
	Head     uint64 `json:"head"`     // the log's head when read
	Lag      uint64 `json:"lag_events"`
	// LagSeconds is the age of the oldest event not yet applied, 0 when
	// caught up.
	LagSeconds float64   `json:"lag_seconds"`
	State      string    `json:"state"`
	Updated    time.Time `json:"updated"` // last commit of its checkpoint
	// Error is why the projection stopped, at ErrorPosition; cleared once
	// it applies that event.
	Error         string `json:"error,omitempty"`
	ErrorPosition uint64 `json:"error_position,omitempty"`
}

// Status returns a projection's status; [ErrNotFound] if it never ran (or
// was dropped).
func Status(s *local.Store, name string) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	st, err := readState(s, name)
	if err != nil {
		return Info{}, err
	}
	if !st.found {
		return Info{}, fmt.Errorf("%w %q: it has not run in this store", ErrNotFound, name)
	}
	return info(s, name, st)
}

// List returns the status of every projection recorded in the store, by
// name.
func List(s *local.Store) ([]Info, error) {
	spaces, err := s.Spaces(spacePrefix)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(spaces))
	for _, sp := range spaces {
		in, err := Status(s, strings.TrimPrefix(sp, spacePrefix))
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func info(s *local.Store, name string, st state) (Info, error) {
	in := Info{
		Name: name, Kind: st.kind, Position: st.position, Head: s.Head(), Updated: st.updated,
		Error: st.errMsg, ErrorPosition: st.errPos,
	}
	switch {
	case st.errPos != 0:
		in.State = StateFailed
	case st.position >= in.Head:
		in.State = StateCaughtUp
	default:
		in.State = StateBehind
	}
	if st.position < in.Head {
		in.Lag = in.Head - st.position
		evs, err := s.ReadBatch(st.position+1, 1)
		if err != nil {
			return Info{}, fmt.Errorf("projection %q: lag: %w", name, err)
		}
		if len(evs) == 1 {
			in.LagSeconds = max(time.Since(evs[0].Time).Seconds(), 0)
		}
	}
	return in, nil
}

package evstoretest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/evstore/evstore/format"
)

// tryCmd counts "Good" events and refuses "Bad" ones through TryApply.
type tryCmd struct{}

func (tryCmd) Streams() []string                                       { return []string{"s"} }
func (tryCmd) Apply(n *int, ev format.Event)                           { *n += 100 } // never used: TryApply wins
func (tryCmd) Handle(context.Context, int) ([]format.EventData, error) { return nil, nil }
func (tryCmd) TryApply(n *int, ev format.Event) error {
	if ev.Type == "Bad" {
		return errors.New("cannot decode")
	}
	*n++
	return nil
}

func TestFoldUsesTryApply(t *testing.T) {
	if n := Fold(tryCmd{}, Event("s", "Good", `{}`), Event("s", "Good", `{}`)); n != 2 {
		t.Fatalf("folded %d, want 2 (through TryApply)", n)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "refused event 2") {
			t.Fatalf("panic %v, want one naming event 2", p)
		}
	}()
	Fold(tryCmd{}, Event("s", "Good", `{}`), Event("s", "Bad", `{}`))
}

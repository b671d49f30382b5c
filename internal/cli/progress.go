package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// progressEvery is how often a long operation writes a plain progress line
// when stderr is not a terminal. Short operations print none.
const progressEvery = 5 * time.Second

// progress shows how far a long operation (backup, verify, export, import,
// compact, restore) is: a bar on a terminal, a plain line on stderr every
// progressEvery otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	what  string
	bytes bool // done and total are bytes

	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	start time.Time
	last  time.Time
}

func newProgress(c *cli.Context, what string, bytes bool) *progress {
	now := time.Now()
	return &progress{w: c.App.ErrWriter, tty: isTerminal(c.App.ErrWriter), what: what, bytes: bytes, start: now, last: now}
}

// update is the func(done, total int64) the libraries call.
func (p *progress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		if now := time.Now(); now.Sub(p.last) >= progressEvery {
			p.last = now
			fmt.Fprintf(p.w, "evstore: %s: %s of %s (%.0f%%, %s)\n", p.what, p.amount(done), p.amount(total),
				100*float64(done)/float64(max(total, 1)), now.Sub(p.start).Round(time.Second))
		}
		return
	}
	if p.bar == nil {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.what),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetWidth(30),
		}
		if p.bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		}
		p.bar = progressbar.NewOptions64(max(total, 1), opts...)
	}
	if total > p.bar.GetMax64() {
		p.bar.ChangeMax64(total)
	}
	p.bar.Set64(done)
}

func (p *progress) amount(n int64) string {
	if p.bytes {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprint(n)
}

// finish removes the bar, so the result line that follows stands alone.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Exit()
		fmt.Fprintln(p.w)
		p.bar = nil
	}
}

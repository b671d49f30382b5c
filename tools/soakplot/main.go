package main

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: soakplot SOAK.csv OUT.png")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "soakplot:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return err
	}
	if len(rows) < 2 {
		return fmt.Errorf("%s has no samples", in)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	series := func(name string) (plotter.XYs, error) {
		scale := 1.0
		if name == "load_x100" {
			name, scale = "loadavg1", 100
		}
		c, ok := col[name]
		if !ok {
			return nil, fmt.Errorf("%s has no column %q", in, name)
		}
		xys := make(plotter.XYs, 0, len(rows)-1)
		for _, r := range rows[1:] {
			x, err1 := strconv.ParseFloat(r[col["elapsed_s"]], 64)
			y, err2 := strconv.ParseFloat(r[c], 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad row %v", r)
			}
			xys = append(xys, plotter.XY{X: x, Y: y * scale})
		}
		return xys, nil
	}
	panel := func(title, ylabel string, lines ...string) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "seconds"
		p.Y.Label.Text = ylabel
		p.Y.Min = 0
		colors := []color.Color{color.RGBA{R: 200, A: 255}, color.RGBA{B: 200, A: 255}, color.RGBA{G: 150, A: 255}}
		for i, name := range lines {
			xys, err := series(name)
			if err != nil {
				return nil, err
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return nil, err
			}
			l.Color = colors[i%len(colors)]
			p.Add(l)
			p.Legend.Add(name, l)
		}
		p.Legend.Top = true
		return p, nil
	}
	var plots []*plot.Plot
	for _, spec := range []struct {
		title, y string
		lines    []string
	}{
		{"memory of the writing process", "MiB", []string{"rss_mb", "rss_anon_mb"}},
		{"transfer latency (64 clients, 1,000 accounts)", "ms", []string{"p50_ms", "p99_ms"}},
		{"throughput, and the shared machine's load", "transfers/s, load × 100", []string{"transfers_per_s", "load_x100"}},
		{"database file", "MiB / bytes per event", []string{"file_mb", "file_bytes_per_event"}},
	} {
		p, err := panel(spec.title, spec.y, spec.lines...)
		if err != nil {
			return err
		}
		plots = append(plots, p)
	}
	img := vgimg.New(9*vg.Inch, 13*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	for i, c := range plot.Align(grid, tiles, dc) {
		plots[i].Draw(c[0])
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
)

// The operations benchmarks run on a 100,000-event log over 5,001 streams
// (see fill); each reports events per second.

func opsStore(b *testing.B) *Store {
	b.Helper()
	s := openTemp(b, Options{NoSync: true})
	fill(b, s, 100_000, 1000)
	return s
}

func reportEvents(b *testing.B, s *Store) {
	b.ReportMetric(float64(s.Head())*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBackupFile: copy, fsync, verify (with bbolt's page check), rename.
func BenchmarkBackupFile(b *testing.B) {
	s := opsStore(b)
	dir := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.BackupFile(context.Background(), filepath.Join(dir, fmt.Sprint(i)), BackupOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, s)
}

func BenchmarkCheck(b *testing.B) {
	s := opsStore(b)
	b.ResetTimer()
	for range b.N {
		if rep, err := s.Check(context.Background()); err != nil || !rep.OK() {
			b.Fatal(err, rep.Problems)
		}
	}
	reportEvents(b, s)
}

func BenchmarkExport(b *testing.B) {
	s := opsStore(b)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Export(context.Background(), io.Discard, ExportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, s)
}

// BenchmarkImportExport: check the whole file, then import it into a new
// store (without fsync).
func BenchmarkImportExport(b *testing.B) {
	s := opsStore(b)
	var buf bytes.Buffer
	if _, err := s.Export(context.Background(), &buf, ExportOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		d := openTemp(b, Options{NoSync: true})
		b.StartTimer()
		if _, err := d.ImportExport(context.Background(), bytes.NewReader(buf.Bytes()), nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
	reportEvents(b, s)
	st, _ := s.Stats()
	b.ReportMetric(float64(buf.Len())/float64(s.Head()), "export-bytes/event")
	b.ReportMetric(float64(st.FileBytes)/float64(s.Head()), "file-bytes/event")
}

func BenchmarkCompactFile(b *testing.B) {
	s := opsStore(b)
	dir := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.CompactFile(context.Background(), filepath.Join(dir, fmt.Sprint(i)), BackupOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	reportEvents(b, s)
}

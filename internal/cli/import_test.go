package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestImportUsage(t *testing.T) {
	db := tempDB(t)
	runCLI(t, "", "--db", db, "import").want(t, 2, nil, []string{"import: missing the FILE"})
	runCLI(t, "", "--db", db, "import", filepath.Join(t.TempDir(), "none")).want(t, 1, nil, []string{"no such file"})
	runCLI(t, strings.Repeat("not an export ", 5), "--db", db, "import", "-").want(t, 1, nil, []string{"not an evstore export", "nothing was imported"})
}

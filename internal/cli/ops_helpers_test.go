package cli

import (
	"crypto/sha256"
	"os"
	"testing"
)

// bankDB is a database with a few accounts and transfers.
func bankDB(t *testing.T) string {
	t.Helper()
	db := tempDB(t)
	mustExec(t, db,
		[2]string{"bank.open", `{"account":"a","owner":"A"}`},
		[2]string{"bank.open", `{"account":"b","owner":"B"}`},
		[2]string{"bank.deposit", `{"account":"a","amount":700}`},
		[2]string{"bank.transfer", `{"from":"a","to":"b","amount":200}`},
	)
	return db
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

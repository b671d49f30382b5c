package projection_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/projection"
)

// SalesPerSKU keeps each SKU's sales total, in cents, under the SKU.
type SalesPerSKU struct{}

func (SalesPerSKU) Name() string { return "sales-per-sku" }

func (SalesPerSKU) Apply(tx *projection.Tx, ev format.Event) error {
	var sale struct {
		SKU   string `json:"sku"`
		Cents int64  `json:"cents"`
	}
	if err := json.Unmarshal(ev.Data, &sale); err != nil {
		return err // stops this projection at ev, with its position
	}
	total := int64(0)
	if v := tx.Get([]byte(sale.SKU)); v != nil {
		total = int64(binary.BigEndian.Uint64(v))
	}
	return tx.Put([]byte(sale.SKU), binary.BigEndian.AppendUint64(nil, uint64(total+sale.Cents)))
}

func ExampleRun() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store, err := local.Open(filepath.Join(dir, "till.db"), local.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	store.Append(ctx, []format.EventData{
		{Stream: "till-1", Type: "Sold", Data: []byte(`{"sku":"sku-42","cents":250}`)},
		{Stream: "till-1", Type: "Opened", Data: []byte(`{}`)},
		{Stream: "till-2", Type: "Sold", Data: []byte(`{"sku":"sku-42","cents":100}`)},
	})

	// An application runs it in the background until it stops:
	//   go projection.Run(ctx, store, SalesPerSKU{}, projection.Options{Types: []string{"Sold"}})
	// Here, Once: catch up with the log and return.
	opts := projection.Options{Types: []string{"Sold"}, Once: true}
	if err := projection.Run(ctx, store, SalesPerSKU{}, opts); err != nil {
		log.Fatal(err)
	}
	v, err := projection.Get(store, "sales-per-sku", []byte("sku-42")) // nil, nil when absent
	if err != nil {
		log.Fatal(err)
	}
	pos, _ := projection.Position(store, "sales-per-sku")
	fmt.Println("sku-42:", binary.BigEndian.Uint64(v), "cents; applied through position", pos)
	// Output: sku-42: 350 cents; applied through position 3
}
